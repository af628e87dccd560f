"""The fleet model against known answers: latencies, queueing laws, totals, faults, pods."""

from __future__ import annotations

import statistics

import pytest
from sim_helpers import SID, SIMPLE, Recorder, pod

from aipolicy.sim.fleet import Fleet, PodInfo, ServiceSettings
from aipolicy.sim.metrics import TTFT_BUCKETS
from aipolicy.sim.model import ApiCapacity, Backend, Faults, PodCapacity, ServiceId
from aipolicy.sim.traffic import ConstantRate, TraceReplay, default_trace


def test_single_request_known_latencies() -> None:
    r = Recorder()
    r.send((1.0, 500, 11))  # prefill 500/1000 = 0.5 s, decode 10 tokens at 100/s = 0.1 s
    r.fleet.step(10.0)
    (o,) = r.outcomes
    assert o.reason == "stop"
    assert o.queue_wait == 0.0
    assert o.ttft == pytest.approx(0.5)
    assert o.e2e == pytest.approx(0.6)
    m = r.fleet.pod_metrics(SID.namespace, "pod-0")
    assert m is not None
    assert (m.prompt_tokens, m.generation_tokens) == (500, 11)
    assert m.finished == {"stop": 1}
    assert m.ttft.count == 1
    assert m.ttft.counts[TTFT_BUCKETS.index(0.5)] == 1  # 0.5 falls in the le="0.5" bucket


def test_prefill_is_shared_by_concurrent_sequences() -> None:
    r = Recorder()
    r.send((0.0, 1000, 1), (0.0, 1000, 1))  # each gets 500 tok/s -> both first tokens at 2 s
    r.fleet.step(5.0)
    assert [o.ttft for o in r.outcomes] == [pytest.approx(2.0), pytest.approx(2.0)]


def test_per_sequence_decode_cap() -> None:
    cap = PodCapacity(1000.0, 100.0, 64, per_sequence_decode_tokens_per_s=20.0)
    r = Recorder(cap)
    r.send((0.0, 0, 21))  # 20 decode tokens at the 20 tok/s cap, not the pod's 100
    r.fleet.step(5.0)
    assert r.outcomes[0].e2e == pytest.approx(1.0)


def test_results_do_not_depend_on_step_size() -> None:
    def run(step: float) -> list[tuple[float, float | None, str]]:
        r = Recorder(PodCapacity(), pods=2)
        r.fleet.set_traffic(SID, TraceReplay(default_trace().window(0, 120)), start=0.0)
        t = 0.0
        while t < 400:
            t += step
            r.fleet.step(t)
        return [(o.finished_at, o.ttft, o.reason) for o in r.outcomes]

    fine, coarse = run(0.25), run(60.0)
    assert len(fine) > 400
    assert [f[2] for f in fine] == [c[2] for c in coarse]
    # Same events in the same order; only float rounding of the split steps differs.
    assert [f[0] for f in fine] == pytest.approx([c[0] for c in coarse], abs=1e-9)
    assert [f[1] for f in fine] == pytest.approx([c[1] for c in coarse], abs=1e-9)


def test_processor_sharing_mean_sojourn_and_littles_law() -> None:
    """M/D/1-PS: mean sojourn = S / (1 - rho), and L = lambda W on the sample path.

    Prompt 0 and 11 output tokens: the first token is immediate, then 10 decode tokens at
    100 tok/s, so S = 0.1 s; Poisson arrivals at 5/s give rho = 0.5 and W = 0.2 s.
    """
    r = Recorder()
    r.fleet.set_traffic(
        SID,
        ConstantRate(5.0, duration=4000.0, prompt_tokens=0, output_tokens=11,
                     arrivals="poisson", seed=11),
        start=0.0,
    )  # fmt: skip
    r.fleet.step(4100.0)
    e2e = [o.e2e for o in r.outcomes]
    assert len(e2e) == pytest.approx(20_000, rel=0.03)
    w = statistics.fmean(e2e)
    assert w == pytest.approx(0.2, rel=0.05)
    # Little's law, exact on a path that starts and ends empty: area under N(t) = sum of W.
    svc = r.service
    assert svc.in_system_seconds == pytest.approx(sum(e2e), rel=1e-9)
    lam = len(e2e) / 4000.0
    assert svc.in_system_seconds / 4000.0 == pytest.approx(lam * w, rel=0.01)


def test_saturation_queue_grows_linearly() -> None:
    # 4 slots at 100 tok/s shared: 10 decode tokens each -> 10 requests/s served; 15 arrive.
    cap = PodCapacity(1000.0, 100.0, 4, per_sequence_decode_tokens_per_s=None)
    r = Recorder(cap)
    r.fleet.set_traffic(SID, ConstantRate(15.0, duration=1000.0, prompt_tokens=0,
                                          output_tokens=11), start=0.0)  # fmt: skip
    lengths = []
    for t in (100.0, 200.0, 300.0):
        r.fleet.step(t)
        lengths.append(r.service.queue_length)
    assert lengths[1] - lengths[0] == pytest.approx(500, abs=2)
    assert lengths[2] - lengths[1] == pytest.approx(500, abs=2)
    assert r.service.running == 4


def test_token_totals_equal_the_trace() -> None:
    trace = default_trace()
    r = Recorder(PodCapacity(), pods=8)
    r.fleet.set_traffic(SID, TraceReplay(trace, speedup=10.0), start=0.0)
    r.fleet.step(trace.duration / 10 + 3600)
    assert r.fleet.idle()
    pods = [r.fleet.pod_metrics(SID.namespace, f"pod-{i}") for i in range(8)]
    assert sum(m.prompt_tokens for m in pods if m) == trace.total_prompt_tokens
    assert sum(m.generation_tokens for m in pods if m) == trace.total_output_tokens
    assert sum(m.finished["stop"] for m in pods if m) == len(trace)
    totals = r.fleet.state()["services"][0]["totals"]
    assert totals["promptTokens"] == trace.total_prompt_tokens
    assert totals["generationTokens"] == trace.total_output_tokens


def test_token_totals_scale_as_configured() -> None:
    window = default_trace().window(0, 300)
    r = Recorder(PodCapacity(), pods=4)
    r.fleet.set_traffic(SID, TraceReplay(window, speedup=2.0, scale=2), start=0.0)
    r.fleet.step(3600.0)
    totals = r.fleet.state()["services"][0]["totals"]
    assert totals["arrived"] == 2 * len(window)
    assert totals["promptTokens"] == 2 * window.total_prompt_tokens
    assert totals["generationTokens"] == 2 * window.total_output_tokens


def test_three_replicas_lower_queue_and_latency() -> None:
    def run(n: int) -> tuple[float, float, float]:
        r = Recorder(PodCapacity(), pods=n)
        r.fleet.set_traffic(SID, TraceReplay(default_trace().window(0, 900)), start=0.0)
        r.fleet.step(7200.0)
        waits = [o.queue_wait or 0.0 for o in r.outcomes]
        e2e = sorted(o.e2e for o in r.outcomes)
        return statistics.fmean(waits), e2e[int(0.95 * len(e2e))], r.service.in_system_seconds

    one, three = run(1), run(3)
    assert one[0] > 10 * max(three[0], 1e-3)  # mean queue wait
    assert three[1] < one[1]  # p95 e2e latency
    assert three[2] < one[2]  # time-averaged requests in the system


def test_cold_start_pod_serves_only_when_ready() -> None:
    r = Recorder(pods=0)
    r.fleet.upsert_pod(pod("p", ready=False))
    r.send((0.0, 100, 1))
    r.fleet.step(30.0)
    assert r.outcomes == []
    assert r.service.queue_length == 1
    status = r.fleet.pod_status(SID.namespace, "p")
    assert status is not None
    assert status.loading
    r.fleet.upsert_pod(pod("p", ready=True))
    r.fleet.step(31.0)
    (o,) = r.outcomes
    assert o.queue_wait == pytest.approx(30.0)
    assert o.ttft == pytest.approx(30.1)


def test_unready_pod_drains_and_removed_pod_fails_its_requests() -> None:
    r = Recorder(pods=2)
    r.send((0.0, 0, 101), (0.0, 0, 101), (0.5, 0, 101))  # 100 decode tokens: ~1-2 s each
    r.fleet.step(0.1)
    r.fleet.upsert_pod(pod("pod-0", ready=False))  # drains: keeps its request
    r.fleet.step(0.6)
    assert r.fleet.pod_metrics(SID.namespace, "pod-1").running == 2  # type: ignore[union-attr]
    r.fleet.step(5.0)
    assert [o.pod for o in r.outcomes].count("pod-0") == 1
    r.send((5.0, 0, 1001))
    r.fleet.step(6.0)
    assert r.fleet.remove_pod(SID.namespace, "pod-1")
    assert r.outcomes[-1].reason == "error"
    assert r.outcomes[-1].pod == "pod-1"
    assert (SID, "pod-1") not in r.fleet.pods()


def test_waiting_gauge_splits_the_shared_queue_over_ready_pods() -> None:
    cap = PodCapacity(1000.0, 100.0, 1, per_sequence_decode_tokens_per_s=None)
    r = Recorder(cap, pods=3)
    r.send(*[(0.0, 0, 1001)] * 10)  # 3 run, 7 wait
    r.fleet.step(1.0)
    waiting = [r.fleet.pod_metrics(SID.namespace, f"pod-{i}").waiting for i in range(3)]  # type: ignore[union-attr]
    assert waiting == [3, 2, 2]
    assert sum(waiting) == r.service.queue_length == 7


def test_counters_never_decrease_and_kv_usage_is_a_fraction() -> None:
    r = Recorder(PodCapacity())
    r.fleet.set_traffic(SID, TraceReplay(default_trace().window(0, 60)), start=0.0)
    last = (0.0, 0.0)
    saw_kv = 0.0
    for i in range(1, 2000):
        r.fleet.step(i * 0.05)
        m = r.fleet.pod_metrics(SID.namespace, "pod-0")
        assert m is not None
        assert m.prompt_tokens >= last[0]
        assert m.generation_tokens >= last[1]
        assert 0.0 <= m.kv_cache_usage <= 1.0
        saw_kv = max(saw_kv, m.kv_cache_usage)
        last = (m.prompt_tokens, m.generation_tokens)
    assert saw_kv > 0.0


def test_queue_timeout_aborts_requests_nobody_serves() -> None:
    r = Recorder(pods=0, queue_timeout_s=10.0)
    r.send((0.0, 1, 1), (4.0, 1, 1))
    r.fleet.step(12.0)
    assert [(o.reason, o.finished_at) for o in r.outcomes] == [("abort", 10.0)]
    r.fleet.step(20.0)
    assert [o.finished_at for o in r.outcomes] == [10.0, 14.0]


def test_error_rate_fault_is_seeded_and_about_right() -> None:
    def failures(seed: int) -> list[int]:
        r = Recorder(seed=seed)
        r.fleet.set_faults(SID, Faults(error_rate=0.3))
        r.fleet.set_traffic(SID, ConstantRate(20.0, duration=200.0, prompt_tokens=1,
                                              output_tokens=1), start=0.0)  # fmt: skip
        r.fleet.step(300.0)
        return [i for i, o in enumerate(r.outcomes) if o.reason == "error"]

    a = failures(1)
    assert a == failures(1)
    assert a != failures(2)
    assert len(a) == pytest.approx(0.3 * 4000, rel=0.1)


def test_full_error_rate_counts_on_the_pod() -> None:
    r = Recorder(pods=2)
    r.fleet.set_faults(SID, Faults(error_rate=1.0))
    r.send(*[(float(i), 10, 10) for i in range(10)])
    r.fleet.step(20.0)
    errors = [r.fleet.pod_metrics(SID.namespace, f"pod-{i}").finished.get("error", 0) for i in range(2)]  # type: ignore[union-attr]
    assert errors == [5, 5]
    assert all(o.e2e == pytest.approx(0.005) for o in r.outcomes)


def test_latency_multiplier_slows_processing() -> None:
    r = Recorder()
    r.fleet.set_faults(SID, Faults(latency_multiplier=2.0))
    r.send((0.0, 500, 11))
    r.fleet.step(5.0)
    assert r.outcomes[0].e2e == pytest.approx(1.2)
    assert r.outcomes[0].ttft == pytest.approx(1.0)


def test_outage_fails_everything_then_recovers() -> None:
    r = Recorder(PodCapacity(1000.0, 100.0, 1, per_sequence_decode_tokens_per_s=None))
    r.send((0.0, 0, 1001), (0.0, 0, 1001), (2.0, 10, 1), (4.0, 10, 1))
    r.fleet.step(1.0)
    r.fleet.set_faults(SID, Faults(outage=True, outage_latency_s=30.0))
    assert [o.reason for o in r.outcomes] == [
        "error",
        "error",
    ]  # the queued one and the running one
    r.fleet.step(3.0)
    assert r.outcomes[-1].e2e == 30.0
    assert r.outcomes[-1].reason == "error"
    m = r.fleet.pod_metrics(SID.namespace, "pod-0")
    assert m is not None
    assert m.e2e_latency.total >= 30.0
    r.fleet.clear_faults(SID)
    r.fleet.step(5.0)
    assert r.outcomes[-1].reason == "stop"


def test_pod_relabelled_to_another_service_moves() -> None:
    f = Fleet()
    f.upsert_pod(PodInfo("ns", "p", "a", None, True))
    f.upsert_pod(PodInfo("ns", "p", "b", "m", True))
    assert f.pods() == [(ServiceId("ns", "b"), "p")]
    m = f.pod_metrics("ns", "p")
    assert m is not None
    assert m.service == "b"
    assert m.model_name == "m"


def test_replace_pods_drops_missing_ones_within_namespace() -> None:
    f = Fleet()
    f.upsert_pod(PodInfo("ns", "a", "s", None, True))
    f.upsert_pod(PodInfo("other", "b", "s", None, True))
    f.replace_pods([PodInfo("ns", "c", "s", None, False)], namespace="ns")
    assert sorted(name for _, name in f.pods()) == ["b", "c"]


def test_time_only_goes_forward() -> None:
    f = Fleet()
    f.step(5.0)
    with pytest.raises(ValueError, match="time goes forward only"):
        f.step(4.0)


def test_api_backed_service_known_latency_and_counters() -> None:
    sid = ServiceId("team-b", "gpt")
    f = Fleet()
    f.configure(sid, ServiceSettings(backend=Backend.API, model="gpt-x",
                                     api_capacity=ApiCapacity(0.4, 20000.0, 80.0)))  # fmt: skip
    f.set_traffic(sid, ConstantRate(1.0, duration=10.0, prompt_tokens=1000, output_tokens=80),
                  start=0.0)  # fmt: skip
    assert not f.upsert_pod(PodInfo("team-b", "x", "gpt", None, True))  # pods are ignored
    f.step(1.9)  # first request (t=0.5) takes 0.4 + 0.05 + 1.0 = 1.45 s
    m = f.api_metrics(sid)
    assert m is not None
    assert (m.requests, m.input_tokens, m.output_tokens) == (0, 0, 0)
    f.step(1.96)
    m = f.api_metrics(sid)
    assert m is not None
    assert (m.requests, m.input_tokens, m.output_tokens) == (1, 1000, 80)
    assert m.latency.total == pytest.approx(1.45)
    f.set_faults(sid, Faults(outage=True, outage_latency_s=5.0))
    f.step(60.0)
    m = f.api_metrics(sid)
    assert m is not None
    assert m.requests == 10
    assert m.failed > 0
    assert m.model == "gpt-x"
    assert SIMPLE.decode_tokens_per_s == 100.0  # the shared constant is untouched
