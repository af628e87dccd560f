"""An absent metric is not an idle service.

The scaling queries sum a metric over a service's pods, and a sum with no series for the service
reads as zero load (observe/prometheus.py): right for a server with nothing running, wrong for
a server that exports the metric under another name (vLLM renamed vllm:gpu_cache_usage_perc to
vllm:kv_cache_usage_perc; SGLang and TGI use their own names). A second query counts the
metric's series per service; once a pod has been Ready long enough to be scraped and the
service still has none, the reading becomes Unavailable("Absent") naming the metric, so the
scaler follows onMetricsUnavailable and MetricsAvailable=False says what to fix.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from aipolicy.policy.observations import Reading, Unavailable, Value

# A pod Ready for less than this may simply not have been scraped yet (a scrape interval or two).
ABSENT_AFTER = timedelta(seconds=30)


def absent_or(
    reading: Reading,
    present: Reading,
    series: str,
    preset: str,
    ready_since: datetime | None,
    now: datetime,
    after: timedelta = ABSENT_AFTER,
) -> Reading:
    """``reading``, or Unavailable("Absent") when the metric's series are missing for good.

    ``present`` is the service's row of the presence query (observe/presets.presence): a value
    when any series exists, NoData when none does. ``ready_since`` is when the longest-Ready pod
    became Ready (None: no pod is Ready, so none could export anything yet).
    """
    if isinstance(present, Value) or present.reason != "NoData":
        return reading  # present, or the presence query itself failed: the reading says why
    if ready_since is None or now - ready_since < after:
        return reading
    return Unavailable(
        "Absent",
        f"metric {series} is absent: no Ready pod of this service exports it (metrics preset {preset}); "
        "set spec.metrics.preset to the model server's (vllm, vllm-legacy, sglang, tgi)",
    )
