"""InferenceService: one model endpoint, self-hosted on GPUs or backed by an API provider."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from aipolicy.api.common import (
    ApiModel,
    ApiStatus,
    Condition,
    Cron,
    Currency,
    Duration,
    Enforcement,
    Money,
    ObjectMeta,
    ObjectName,
    Quantity,
    TimeZone,
    cel_time_zone_rule,
)
from aipolicy.api.economics import GpuAlternative, UnitEconomics
from aipolicy.api.serving import (
    SERVING_RULES,
    EnvFromSource,
    EnvVar,
    LivenessProbe,
    LocalObjectReference,
    StartupProbe,
    StrictQuantity,
    TopologySpreadConstraint,
    Volume,
    VolumeMount,
)
from aipolicy.api.slo import ServingSlo, SloStatus

KIND = "InferenceService"
PLURAL = "inferenceservices"
SHORT_NAMES = ("aisvc",)

Mode = Literal["Normal", "Degraded", "Fallback", "Suspended"]
MetricType = Literal[
    "QueueDepth", "RequestsInFlight", "TokensPerSecond", "KVCacheUsage", "Latency", "PromQL", "SLO"
]
MetricsPreset = Literal["vllm", "vllm-legacy", "sglang", "tgi"]
"""Metric names of a model server (observe/presets.py): current vLLM, older vLLM, SGLang, TGI."""


class GPU(ApiModel):
    """GPUs each replica needs, requested as an extended resource."""

    count: int = Field(default=1, ge=0, le=16)
    """GPUs per replica (0 for a CPU-only server)."""
    resource_name: str = Field(
        default="nvidia.com/gpu", pattern=r"^[a-z0-9.\-]+/[a-z0-9.\-_]+$", max_length=253
    )
    """The extended resource that counts GPUs, such as nvidia.com/gpu or amd.com/gpu."""
    product: str | None = Field(default=None, max_length=128)
    """Schedule only onto nodes with this GPU (the nvidia.com/gpu.product node label), such as NVIDIA-A100-SXM4-40GB."""


class ComputeResources(ApiModel):
    """CPU and memory each replica requests (and is limited to)."""

    cpu: Quantity = "4"
    """CPU per replica, as a Kubernetes quantity."""
    memory: Quantity = "32Gi"
    """Memory per replica, as a Kubernetes quantity."""


class Toleration(ApiModel):
    """A toleration of the pods (corev1.Toleration)."""

    key: str | None = None
    """The taint key; empty with operator Exists tolerates every taint."""
    operator: Literal["Exists", "Equal"] = "Equal"
    """Exists or Equal."""
    value: str | None = None
    """The taint value for Equal."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """The taint effect to tolerate; empty tolerates all effects."""
    toleration_seconds: int | None = Field(default=None, ge=0)
    """For NoExecute: how long the pod stays bound after the taint appears."""


class ReadinessProbe(ApiModel):
    """An HTTP readiness probe; a model server is Ready once its weights are loaded."""

    path: str = Field(default="/health", pattern=r"^/")
    """The HTTP path to probe."""
    initial_delay_seconds: int = Field(default=0, ge=0, le=3600)
    """Seconds before the first probe."""
    period_seconds: int = Field(default=5, ge=1, le=300)
    """Seconds between probes."""
    failure_threshold: int = Field(default=3, ge=1, le=100)
    """Failed probes in a row before the pod is unready."""


class Serving(ApiModel):
    """A self-hosted model server: the operator owns a Deployment and a Service for it."""

    image: str = Field(min_length=1, max_length=512)
    """The container image of the model server, such as vllm/vllm-openai:v0.6.3."""
    command: list[str] = Field(default_factory=list, max_length=32)
    """The container's entrypoint; empty keeps the image's."""
    args: list[str] = Field(default_factory=list, max_length=128)
    """Arguments to the server, such as --model and --max-model-len."""
    env: list[EnvVar] = Field(default_factory=list, max_length=64)
    """Environment variables of the server: literal values, or keys of Secrets and ConfigMaps (valueFrom)."""
    port: int = Field(default=8000, ge=1, le=65535)
    """The port the server listens on (vLLM: 8000)."""
    gpu: GPU = Field(default_factory=GPU)
    """GPUs per replica."""
    resources: ComputeResources = Field(default_factory=ComputeResources)
    """CPU and memory per replica."""
    node_selector: dict[str, str] = Field(default_factory=dict)
    """Node labels the pods need, added to the GPU product's."""
    tolerations: list[Toleration] = Field(default_factory=list, max_length=32)
    """Taints the pods tolerate, such as nvidia.com/gpu:NoSchedule."""
    affinity: dict[str, Any] | None = None
    """A corev1.Affinity, passed to the pods as is."""
    readiness_probe: ReadinessProbe = Field(default_factory=ReadinessProbe)
    """When a replica counts as ready."""
    pod_labels: dict[str, str] = Field(default_factory=dict)
    """Extra labels of the pods."""
    pod_annotations: dict[str, str] = Field(default_factory=dict)
    """Extra annotations of the pods."""
    # What a real deployment needs besides image and GPUs (api/serving.py, issue 16).
    env_from: list[EnvFromSource] = Field(default_factory=list, max_length=16)
    """Secrets and ConfigMaps whose every key becomes an environment variable."""
    volumes: list[Volume] = Field(default_factory=list, max_length=32)
    """Volumes of the pods: persistentVolumeClaim, secret, configMap, emptyDir or hostPath."""
    volume_mounts: list[VolumeMount] = Field(default_factory=list, max_length=32)
    """Where the server's container mounts volumes; each names one of volumes."""
    shm_size: StrictQuantity | None = None
    """The size of a memory-backed /dev/shm (an emptyDir of medium Memory named dshm), such as 16Gi; tensor parallelism needs more than the runtime's 64Mi. It counts against resources.memory."""
    image_pull_secrets: list[LocalObjectReference] = Field(default_factory=list, max_length=16)
    """Secrets with the credentials to pull the image from a private registry."""
    priority_class_name: ObjectName | None = None
    """The pods' PriorityClass (it must exist): which pods the scheduler preempts for which."""
    runtime_class_name: ObjectName | None = None
    """The pods' RuntimeClass, such as nvidia where the GPU operator installs one."""
    service_account_name: ObjectName | None = None
    """The ServiceAccount the pods run as (it must exist); unset, the namespace's default."""
    startup_probe: StartupProbe = Field(default_factory=StartupProbe)
    """Holds the liveness probe back while the model loads; its failure budget defaults from scaling.coldStartSeconds."""
    liveness_probe: LivenessProbe = Field(default_factory=LivenessProbe)
    """Restarts a server that stops answering, once it has started."""
    topology_spread_constraints: list[TopologySpreadConstraint] = Field(default_factory=list, max_length=8)
    """How replicas spread over zones or nodes; each counts this service's pods unless it has a labelSelector."""
    termination_grace_period_seconds: int | None = Field(default=None, ge=0, le=86400)
    """Seconds a stopping replica has to finish its in-flight generations before it is killed; unset, the Kubernetes default (30)."""

    cel_rules = SERVING_RULES


class Provider(ApiModel):
    """A model behind an OpenAI-compatible API; no pods, the front door is the namespace's aipolicy gateway."""

    url: str = Field(pattern=r"^https?://[A-Za-z0-9.\-]+(:[0-9]+)?(/.*)?$", max_length=2048)
    """The API's base URL, such as https://api.openai.com/v1."""
    model: str | None = Field(default=None, max_length=256)
    """The provider's model name, when it differs from spec.model."""
    api_key_secret: str | None = Field(default=None, max_length=253)
    """A Secret in the same namespace whose key `apiKey` holds the API key."""
    gpu_alternative: GpuAlternative | None = None
    """Self-host or API: a GPU profile and its hourly price; status.economics then shows what serving this service's traffic on GPUs would cost, and the break-even. For comparison only, never added to spend."""


class Pricing(ApiModel):
    """What this service costs. Money is a decimal string, never a float.

    A self-hosted service (serving) is charged GPU-hours x gpuHour only; an API-backed one
    (provider) tokens x the prices per million only. Token prices on a self-hosted service are
    for comparison with API providers and are never added to spend: its GPUs are already paid
    for by the hour, so adding them would charge every token twice.
    """

    currency: Currency = "USD"
    """An ISO 4217 code such as USD or EUR."""
    gpu_hour: Money | None = None
    """Price of one GPU for one hour. What a self-hosted service is charged: GPU-hours held by its running pods x this, busy or idle. Unused for a provider."""
    input_per_million_tokens: Money | None = None
    """Price of one million prompt tokens. Charged for a provider; on a self-hosted service for comparison only, never added to spend."""
    output_per_million_tokens: Money | None = None
    """Price of one million generated tokens. Charged for a provider; on a self-hosted service for comparison only, never added to spend."""


class ScalingMetric(ApiModel):
    """The signal autoscaling follows, and its target per replica."""

    type: MetricType = "QueueDepth"
    """QueueDepth (waiting requests per replica), RequestsInFlight (running per replica), TokensPerSecond (generated per replica), KVCacheUsage (the KV cache's used fraction per replica), Latency (a percentile, in seconds), PromQL (query), or SLO (replicas sized for scaling.slo through a calibrated serving model; target unused)."""
    target: float = Field(default=4, gt=0, le=1e9)
    """The value per replica that scaling aims at (for Latency: seconds; for KVCacheUsage: a fraction such as 0.8)."""
    percentile: float = Field(default=0.95, gt=0, lt=1)
    """For Latency: the quantile, such as 0.95."""
    window: Duration = "1m"
    """The rate window of counter and histogram metrics."""
    query: str | None = Field(default=None, max_length=4096)
    """For PromQL: a query returning one value per service, summed over the service's pods, labelled namespace and service."""

    cel_rules = (
        ("self.type != 'PromQL' || has(self.query)", "query is required when type is PromQL"),
        ("self.type == 'PromQL' || !has(self.query)", "query is only allowed when type is PromQL"),
    )


class PrewarmSchedule(ApiModel):
    """A window of known demand: replicas start coldStartSeconds before it opens."""

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    """A name for events and status."""
    schedule: Cron
    """When the window opens, as a five-field cron expression, such as '0 8 * * 1-5'."""
    time_zone: TimeZone = "UTC"
    """The IANA time zone of the schedule, such as Europe/Paris."""
    duration: Duration
    """How long the window stays open, such as 10h."""
    min_replicas: int = Field(ge=1, le=1000)
    """Replicas kept at least during the window."""

    cel_rules = ((cel_time_zone_rule("timeZone"), "timeZone must be an IANA time zone such as Europe/Paris"),)


class Scaling(ApiModel):
    """How replicas follow demand. Scaling is GPU-aware: pods Pending for lack of GPUs stop the climb."""

    min_replicas: int = Field(default=1, ge=0, le=1000)
    """The fewest replicas; 0 allows scale to zero."""
    max_replicas: int = Field(default=1, ge=1, le=1000)
    """The most replicas."""
    metric: ScalingMetric = Field(default_factory=ScalingMetric)
    """The signal to scale on."""
    tolerance: float = Field(default=0.1, ge=0, le=1)
    """No change while metric/target is within 1 ± tolerance."""
    scale_up_stabilization: Duration = "0s"
    """Scale up to the lowest recommendation of this window (damps spikes)."""
    scale_down_stabilization: Duration = "5m"
    """Scale down to the highest recommendation of this window (damps dips)."""
    max_scale_up_step: int = Field(default=4, ge=1, le=1000)
    """The most replicas added in one decision."""
    max_scale_down_step: int = Field(default=1, ge=1, le=1000)
    """The most replicas removed in one decision."""
    scale_to_zero_after: Duration | None = None
    """With minReplicas 0: scale to zero after this long without demand."""
    activation_query: str | None = Field(default=None, max_length=4096)
    """A PromQL query of demand waiting for a service at zero (labelled namespace and service); above zero it starts one replica. Defaults to the front door's waiting requests."""
    cold_start_seconds: int | None = Field(default=None, ge=0, le=7200)
    """How long a new replica takes to become Ready; pre-warm starts this early. Unset: measured, the 90th percentile of this service's recent pods from creation to Ready (120 until one was measured); see status.coldStartSeconds."""
    prewarm: list[PrewarmSchedule] = Field(default_factory=list, max_length=16)
    """Windows of known demand to be ready for."""
    on_metrics_unavailable: Literal["Hold", "ScaleToMin", "ScaleToMax"] = "Hold"
    """What to do when the metric is missing: hold the last decision (default), or go to min or max."""
    evaluation_interval: Duration = "15s"
    """How often scaling is decided."""
    enforcement: Enforcement = "Enforce"
    """Enforce sets the Deployment's replicas; DryRun decides and reports (status.desiredReplicas, events) and leaves the replicas as they are (an enforced budget's or fallback policy's degraded cap still applies)."""
    slo: ServingSlo | None = None
    """With metric.type SLO: the latency objective replicas are sized for."""

    cel_rules = (
        (
            "self.minReplicas <= self.maxReplicas",
            "minReplicas must be less than or equal to maxReplicas",
        ),
        (
            "!has(self.scaleToZeroAfter) || self.minReplicas == 0",
            "scaleToZeroAfter needs minReplicas: 0",
        ),
        (
            "self.prewarm.all(p, p.minReplicas <= self.maxReplicas)",
            "each prewarm minReplicas must be at most maxReplicas",
        ),
        (
            "self.prewarm.all(p, self.prewarm.exists_one(q, q.name == p.name))",
            "prewarm names must be unique",
        ),
        (
            "self.metric.type != 'SLO' || has(self.slo)",
            "slo is required when metric.type is SLO",
        ),
    )


class Metrics(ApiModel):
    """Where the model server's metrics come from."""

    preset: MetricsPreset | None = None
    """The model server's metric names: vllm (current vLLM, vllm:kv_cache_usage_perc), vllm-legacy (vLLM from before mid-2025, vllm:gpu_cache_usage_perc), sglang or tgi. Unset: the operator's --metrics-preset (vllm by default)."""


class DegradedMode(ApiModel):
    """What the service looks like in degraded mode (asked for by a budget or a fallback policy)."""

    max_replicas: int = Field(default=1, ge=0, le=1000)
    """The most replicas while degraded; 0 suspends it."""


class FrontDoor(ApiModel):
    """How the aipolicy gateway (the L7 front door) holds and spreads this service's requests."""

    queue_size: int = Field(default=100, ge=0, le=100000)
    """Requests held while no replica is Ready (scale from zero); one more gets 503 at once."""
    queue_timeout: Duration = "2m"
    """How long a held request waits for a Ready replica before 503 (the model is starting)."""
    max_in_flight_per_replica: int | None = Field(default=None, ge=1, le=100000)
    """Requests the gateway sends to each Ready replica at once; empty sets no bound."""
    overflow: Literal["Queue", "Fallback"] = "Queue"
    """Above maxInFlightPerReplica: Queue at the pods, or send the excess to the first usable step of the service's FallbackPolicy chain (pay per token for bursts)."""

    cel_rules = (
        (
            "self.overflow != 'Fallback' || has(self.maxInFlightPerReplica)",
            "overflow Fallback needs maxInFlightPerReplica",
        ),
    )


class InferenceServiceSpec(ApiModel):
    """The desired state of an InferenceService. Exactly one of serving and provider."""

    model: str = Field(min_length=1, max_length=256)
    """The model served, such as meta-llama/Llama-3.1-8B-Instruct."""
    serving: Serving | None = None
    """A self-hosted server on GPUs."""
    provider: Provider | None = None
    """An API provider instead of pods."""
    pricing: Pricing = Field(default_factory=Pricing)
    """Prices, for cost and budgets."""
    scaling: Scaling = Field(default_factory=Scaling)
    """How replicas follow demand (self-hosted only)."""
    metrics: Metrics = Field(default_factory=Metrics)
    """Which metric names the model server exports (self-hosted only)."""
    degraded: DegradedMode = Field(default_factory=DegradedMode)
    """What degraded mode means for this service."""
    front_door: FrontDoor = Field(default_factory=FrontDoor)
    """How the gateway queues requests at zero replicas and overflows bursts."""

    cel_rules = (
        (
            "has(self.serving) != has(self.provider)",
            "exactly one of serving and provider must be set",
        ),
        (
            "!has(self.serving) || has(self.pricing.gpuHour)",
            "pricing.gpuHour is required for a self-hosted (serving) service",
        ),
        (
            "!has(self.provider) || (has(self.pricing.inputPerMillionTokens) && has(self.pricing.outputPerMillionTokens))",
            "pricing.inputPerMillionTokens and pricing.outputPerMillionTokens are required for a provider",
        ),
        (
            "!has(self.metrics) || !has(self.metrics.preset) || self.metrics.preset != 'tgi'"
            " || !has(self.scaling) || !has(self.scaling.metric) || self.scaling.metric.type != 'KVCacheUsage'",
            "scaling.metric.type KVCacheUsage needs a KV cache metric, and metrics.preset tgi has none",
        ),
    )


class ScalingDecisionRecord(ApiModel):
    """One scaling decision, kept in status."""

    time: datetime
    """When it was decided."""
    from_replicas: int = Field(alias="from")
    """Replicas before."""
    to_replicas: int = Field(alias="to")
    """Replicas after."""
    reason: str
    """Why, in CamelCase."""
    message: str = ""
    """The numbers behind it."""


class ColdStart(ApiModel):
    """One measured cold start: a pod from creation to Ready."""

    pod: str
    """The pod's name."""
    seconds: float
    """From creationTimestamp to the Ready condition's lastTransitionTime."""
    ready_at: datetime
    """When it became Ready."""


class Recommendation(ApiModel):
    """A raw replica recommendation, kept for the stabilization windows."""

    time: datetime
    """When it was made."""
    replicas: int
    """What it recommended."""


class InferenceServiceStatus(ApiStatus):
    """The observed state of an InferenceService."""

    observed_generation: int = 0
    """The generation this status reflects."""
    mode: Mode = "Normal"
    """Normal, Degraded, Fallback or Suspended."""
    replicas: int = 0
    """Pods that exist."""
    ready_replicas: int = 0
    """Pods that are Ready."""
    desired_replicas: int = 0
    """What scaling decided."""
    gpus: int = 0
    """GPUs held by scheduled pods."""
    cost_per_hour: str = "0"
    """What the held GPUs cost per hour, in pricing.currency."""
    endpoint: str = ""
    """The front door clients call."""
    active_backend: str = ""
    """Where the front door sends traffic now."""
    backend: str = ""
    """Who serves the front door's traffic now: self (this service), or the fallback that took it over (service/<name>, provider/<host>). Read with mode: a Degraded service may also be served by a fallback."""
    mode_reason: str = ""
    """Why the service is in its mode."""
    mode_since: datetime | None = None
    """Since when it is in its mode."""
    last_scale_time: datetime | None = None
    """When replicas last changed."""
    idle_since: datetime | None = None
    """Since when the service has had no demand (for scale to zero)."""
    metric_value: str = ""
    """The last value of the scaling metric."""
    recommendations: list[Recommendation] = Field(default_factory=list)
    """Recent recommendations within the stabilization windows (so a restart loses none)."""
    active_prewarm: str = ""
    """The pre-warm schedule in force, if any."""
    cold_starts: list[ColdStart] = Field(default_factory=list)
    """The last cold starts measured (at most 10), oldest first."""
    cold_start_seconds: int | None = None
    """The pre-warm lead time in use: spec.scaling.coldStartSeconds, or the 90th percentile of coldStarts."""
    cold_start_source: str = ""
    """Where coldStartSeconds comes from: Spec, Measured or Default."""
    slo: SloStatus | None = None
    """What SLO sizing remembers (its forecast), with metric.type SLO."""
    economics: UnitEconomics | None = None
    """What a request costs, latency, errors and idle GPUs, refreshed once a minute (absent fields: no data)."""
    decisions: list[ScalingDecisionRecord] = Field(default_factory=list)
    """The last five scaling decisions, newest last."""
    conditions: list[Condition] = Field(default_factory=list)
    """Ready, ScalingActive, MetricsAvailable, CapacityAvailable, Degraded, SecretsAvailable (when a provider names a Secret), PoliciesValid (False with PolicyUnreadable when an AIBudget or FallbackPolicy that governs the service cannot be read and is ignored)."""


class InferenceService(ApiModel):
    """A model endpoint whose cost and scaling aipolicy manages."""

    model_config = ApiModel.model_config | {"extra": "ignore"}

    metadata: ObjectMeta
    spec: InferenceServiceSpec
    status: InferenceServiceStatus = Field(default_factory=InferenceServiceStatus)


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Mode", "type": "string", "jsonPath": ".status.mode"},
    {
        "name": "Backend",
        "type": "string",
        "jsonPath": ".status.backend",
        "description": "who serves the traffic: self, or the fallback that took it over",
    },
    {"name": "Ready", "type": "integer", "jsonPath": ".status.readyReplicas"},
    {"name": "Desired", "type": "integer", "jsonPath": ".status.desiredReplicas"},
    {"name": "GPUs", "type": "integer", "jsonPath": ".status.gpus"},
    {"name": "Cost/h", "type": "string", "jsonPath": ".status.costPerHour"},
    {"name": "Req/s", "type": "number", "jsonPath": ".status.economics.requestsPerSecond", "priority": 1},
    {
        "name": "Cost/1k",
        "type": "string",
        "jsonPath": ".status.economics.costPerThousandRequests",
        "priority": 1,
    },
    {"name": "TTFT-p95", "type": "number", "jsonPath": ".status.economics.ttftP95Seconds", "priority": 1},
    {"name": "Errors", "type": "number", "jsonPath": ".status.economics.errorRate", "priority": 1},
    {
        "name": "Idle-GPU-h",
        "type": "number",
        "jsonPath": ".status.economics.idleGpuHoursThisPeriod",
        "priority": 1,
    },
    {"name": "Model", "type": "string", "jsonPath": ".spec.model", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]
