"""What the gateway knows of each pod's load, for SLO overflow (``scaling.slo.overflow``).

:func:`aipolicy.policy.slo.route` predicts a request's time to first token on each Ready
replica from the prompt tokens queued ahead of it and the sequences decoding there. The
gateway sees both for the requests it sent: a request is *queued* (its prompt not yet
answered) from the moment it is sent until its first byte comes back, then *answering*
(decoding) until it ends. A streamed answer's first byte is its first token, so this is
exact for streams; a whole (non-streamed) answer arrives at once, so its request counts as
queued until the end, which overstates the queue and errs toward overflow, never toward a
missed SLO. Prompt sizes are estimated from the body (:func:`estimate_prompt_tokens`): the
gateway does not tokenize.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aipolicy.policy.slo import ReplicaLoad

__all__ = ["Flight", "PodLoads", "estimate_prompt_tokens"]

# About four characters a token in English text (OpenAI's rule of thumb), and a few tokens of
# chat template around each message.
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return "".join(
            p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def estimate_prompt_tokens(body: Mapping[str, Any]) -> int:
    """Prompt tokens of an OpenAI request, estimated from its text (chat messages or prompt)."""
    messages = body.get("messages")
    if isinstance(messages, list):
        chars = sum(len(_text(m.get("content"))) for m in messages if isinstance(m, dict))
        return chars // CHARS_PER_TOKEN + TOKENS_PER_MESSAGE * len(messages)
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        return sum(len(p) for p in prompt if isinstance(p, str)) // CHARS_PER_TOKEN
    return len(prompt) // CHARS_PER_TOKEN if isinstance(prompt, str) else 0


@dataclass
class _Pod:
    queued_tokens: int = 0
    answering: int = 0
    #: requests at the pod now: what says when to forget it (a request's prompt may count 0 tokens)
    flights: int = 0


class Flight:
    """One request at one pod: queued until :meth:`answering`, gone at :meth:`done`."""

    def __init__(self, pods: dict[str, _Pod], pod: str, tokens: int) -> None:
        self._pods, self._pod, self._tokens = pods, pod, tokens
        self._answering = False
        self._done = False
        load = pods.setdefault(pod, _Pod())
        load.queued_tokens += tokens
        load.flights += 1

    def answering(self) -> None:
        if self._answering or self._done:
            return
        self._answering = True
        load = self._pods[self._pod]
        load.queued_tokens -= self._tokens
        load.answering += 1

    def done(self) -> None:
        if self._done:
            return
        self._done = True
        load = self._pods[self._pod]
        if self._answering:
            load.answering -= 1
        else:
            load.queued_tokens -= self._tokens
        load.flights -= 1
        if load.flights == 0:
            del self._pods[self._pod]


class PodLoads:
    """The requests the gateway has at each pod now (see the module docstring)."""

    def __init__(self) -> None:
        self._pods: dict[str, _Pod] = {}

    def sent(self, pod: str, prompt_tokens: int) -> Flight:
        return Flight(self._pods, pod, prompt_tokens)

    def view(self) -> dict[str, ReplicaLoad]:
        """Per pod with requests in flight; a pod not listed has none."""
        return {pod: ReplicaLoad(float(p.queued_tokens), p.answering) for pod, p in self._pods.items()}
