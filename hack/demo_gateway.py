"""The demo's real clients: a few requests per second through `aipolicy gateway`, sized like
the Azure trace's requests (prompt and output tokens, capped), and a tally of what answered."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections import Counter

from aipolicy.sim.traffic import default_trace


class GatewayClients:
    def __init__(self, url: str, model: str, rate: float = 2.0) -> None:
        self.url = f"{url}/v1/chat/completions"
        self.model = model
        self.rate = rate
        self.tally: Counter[str] = Counter()
        self.last_refusal = ""
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sizes = [
            (min(r.prompt_tokens, 2000), max(1, min(r.output_tokens, 40)))
            for r in default_trace().requests[:500]
        ]

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            prompt, output = self._sizes[i % len(self._sizes)]
            threading.Thread(target=self._one, args=(prompt, output), daemon=True).start()
            i += 1
            self._stop.wait(1 / self.rate)

    def _one(self, prompt: int, output: int) -> None:
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": "word " * prompt}],
            "max_tokens": output,
        }
        request = urllib.request.Request(
            self.url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                key = f"{response.status} via {response.headers.get('x-aipolicy-backend')}"
        except urllib.error.HTTPError as error:
            key = f"{error.code} via {error.headers.get('x-aipolicy-backend') or 'no backend'}"
            if error.code == 429:
                with self._lock:
                    self.last_refusal = json.loads(error.read())["error"]["message"]
        except OSError as error:
            key = f"failed ({type(error).__name__})"
        with self._lock:
            self.tally[key] += 1

    def summary(self) -> str:
        """What answered since the last summary, e.g. '12 x 200 via service/llama-70b'."""
        with self._lock:
            tally, self.tally = self.tally, Counter()
        if not tally:
            return "gateway: no request finished yet"
        return "gateway: " + ", ".join(f"{n} x {key}" for key, n in tally.most_common())
