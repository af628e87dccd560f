"""The parts of `spec.serving` a real model-server deployment needs besides image and GPUs.

Secrets and ConfigMaps as environment, volumes (a weights cache, a memory-backed /dev/shm),
image pull secrets, priority and runtime classes, a service account, startup and liveness probes,
topology spread and a termination grace period. Each mirrors its corev1 field, restricted to what
a model server needs, so `kubectl explain` documents it and the schema refuses the rest at apply
time. The operator passes them to the pods (kube/pod_spec.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, GetJsonSchemaHandler, StringConstraints
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from aipolicy.api.common import QUANTITY_PATTERN, ApiModel, LabelSelectorRequirement, ObjectName


@dataclass(frozen=True)
class FieldRule:
    """A CEL rule on one field's own schema (so the apiserver's error names that field)."""

    rule: str
    message: str

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.setdefault("x-kubernetes-validations", []).append(
            {"rule": self.rule, "message": self.message}
        )
        return json_schema


#: A resource quantity the apiserver can parse: the pattern catches most typos ("16GB"), the
#: CEL rule the rest ("1..6Gi").
StrictQuantity = Annotated[
    str,
    StringConstraints(pattern=QUANTITY_PATTERN, max_length=64),
    FieldRule("isQuantity(self)", "must be a Kubernetes quantity, such as 16Gi"),
]
VolumeName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]
ConfigKey = Annotated[str, StringConstraints(pattern=r"^[-._a-zA-Z0-9]+$", min_length=1, max_length=253)]
AbsolutePath = Annotated[str, StringConstraints(pattern=r"^/", max_length=1024)]

#: The volume that `shmSize` adds, mounted at /dev/shm.
SHM_VOLUME = "dshm"
SHM_PATH = "/dev/shm"


# ---------------------------------------------------------------------------------------------
# Environment from Secrets and ConfigMaps.
class SecretKeySelector(ApiModel):
    """One key of a Secret in the service's namespace."""

    name: ObjectName
    """The Secret's name, such as hf-token."""
    key: ConfigKey
    """The key whose value the variable takes, such as token."""
    optional: bool | None = None
    """Start the server even when the Secret or its key is missing (the variable is then unset)."""


class ConfigMapKeySelector(ApiModel):
    """One key of a ConfigMap in the service's namespace."""

    name: ObjectName
    """The ConfigMap's name."""
    key: ConfigKey
    """The key whose value the variable takes."""
    optional: bool | None = None
    """Start the server even when the ConfigMap or its key is missing."""


class EnvVarSource(ApiModel):
    """Where a variable's value comes from: exactly one of secretKeyRef and configMapKeyRef."""

    secret_key_ref: SecretKeySelector | None = None
    """A key of a Secret, such as a Hugging Face token."""
    config_map_key_ref: ConfigMapKeySelector | None = None
    """A key of a ConfigMap."""

    cel_rules = (
        (
            "has(self.secretKeyRef) != has(self.configMapKeyRef)",
            "exactly one of secretKeyRef and configMapKeyRef must be set",
        ),
    )


class EnvVar(ApiModel):
    """An environment variable: a literal value, or one taken from a Secret or a ConfigMap."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]*$", max_length=256)
    """The variable's name."""
    value: str | None = None
    """Its literal value."""
    value_from: EnvVarSource | None = None
    """Its value from a key of a Secret or a ConfigMap, instead of a literal value."""

    cel_rules = (
        (
            "!has(self.valueFrom) || !has(self.value) || self.value == ''",
            "value and valueFrom are mutually exclusive",
        ),
    )


class SecretEnvSource(ApiModel):
    """A Secret whose every key becomes a variable."""

    name: ObjectName
    """The Secret's name."""
    optional: bool | None = None
    """Start the server even when the Secret is missing."""


class ConfigMapEnvSource(ApiModel):
    """A ConfigMap whose every key becomes a variable."""

    name: ObjectName
    """The ConfigMap's name."""
    optional: bool | None = None
    """Start the server even when the ConfigMap is missing."""


class EnvFromSource(ApiModel):
    """Every key of a Secret or a ConfigMap as a variable: exactly one of secretRef and configMapRef."""

    prefix: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)
    """A prefix added to each key's name, such as HF_."""
    secret_ref: SecretEnvSource | None = None
    """The Secret."""
    config_map_ref: ConfigMapEnvSource | None = None
    """The ConfigMap."""

    cel_rules = (
        (
            "has(self.secretRef) != has(self.configMapRef)",
            "exactly one of secretRef and configMapRef must be set",
        ),
    )


# ---------------------------------------------------------------------------------------------
# Volumes: the five kinds a model server uses. Any other kind is an unknown field.
class PersistentVolumeClaimVolume(ApiModel):
    """A PersistentVolumeClaim in the service's namespace, such as a model-weights cache."""

    claim_name: ObjectName
    """The claim's name."""
    read_only: bool = False
    """Mount it read-only (several replicas can share a ReadOnlyMany volume)."""


class SecretVolume(ApiModel):
    """A Secret's keys as files."""

    secret_name: ObjectName
    """The Secret's name."""
    optional: bool | None = None
    """Start the server even when the Secret is missing."""
    default_mode: int | None = Field(default=None, ge=0, le=0o777)
    """The files' mode bits, such as 0440 (288 in decimal); the kubelet's default is 0644."""


class ConfigMapVolume(ApiModel):
    """A ConfigMap's keys as files."""

    name: ObjectName
    """The ConfigMap's name."""
    optional: bool | None = None
    """Start the server even when the ConfigMap is missing."""
    default_mode: int | None = Field(default=None, ge=0, le=0o777)
    """The files' mode bits; the kubelet's default is 0644."""


class EmptyDirVolume(ApiModel):
    """A scratch directory that lives as long as the pod."""

    medium: Literal["", "Memory"] = ""
    """Memory for a tmpfs (counted against the container's memory), empty for the node's disk."""
    size_limit: StrictQuantity | None = None
    """The most it may hold, such as 20Gi."""


class HostPathVolume(ApiModel):
    """A directory of the node, such as a weights cache shared by the pods of one node."""

    path: AbsolutePath
    """The path on the node."""
    type: Literal[
        "", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice", "BlockDevice"
    ] = ""
    """What must be at the path; empty checks nothing."""


class Volume(ApiModel):
    """A volume of the pods: exactly one of persistentVolumeClaim, secret, configMap, emptyDir and hostPath."""

    name: VolumeName
    """The volume's name, which volumeMounts refer to."""
    persistent_volume_claim: PersistentVolumeClaimVolume | None = None
    """A PersistentVolumeClaim."""
    secret: SecretVolume | None = None
    """A Secret."""
    config_map: ConfigMapVolume | None = None
    """A ConfigMap."""
    empty_dir: EmptyDirVolume | None = None
    """A scratch directory."""
    host_path: HostPathVolume | None = None
    """A directory of the node."""

    cel_rules = (
        (
            "[has(self.persistentVolumeClaim), has(self.secret), has(self.configMap), has(self.emptyDir),"
            " has(self.hostPath)].exists_one(set, set)",
            "exactly one of persistentVolumeClaim, secret, configMap, emptyDir and hostPath must be set",
        ),
    )


class VolumeMount(ApiModel):
    """Where a volume appears in the server's container."""

    name: VolumeName
    """The name of a volume in volumes."""
    mount_path: AbsolutePath
    """Where it is mounted, such as /models."""
    sub_path: str | None = Field(default=None, pattern=r"^[^/]", max_length=1024)
    """A path inside the volume to mount instead of its root."""
    read_only: bool = False
    """Mount it read-only."""

    cel_rules = (("!has(self.subPath) || !self.subPath.contains('..')", "subPath must not contain '..'"),)


class LocalObjectReference(ApiModel):
    """An object in the service's namespace, by name."""

    name: ObjectName
    """Its name."""


# ---------------------------------------------------------------------------------------------
# Probes. A model loads for minutes: the startup probe holds liveness (and readiness) back until
# it has loaded, so the liveness probe only ever judges a server that once answered.
class StartupProbe(ApiModel):
    """An HTTP startup probe; its failure budget defaults from scaling.coldStartSeconds."""

    enabled: bool = True
    """Whether the pods have a startup probe."""
    path: str | None = Field(default=None, pattern=r"^/", max_length=1024)
    """The HTTP path to probe; unset, readinessProbe.path."""
    period_seconds: int = Field(default=10, ge=1, le=300)
    """Seconds between probes."""
    timeout_seconds: int = Field(default=5, ge=1, le=300)
    """Seconds a probe may take."""
    failure_threshold: int | None = Field(default=None, ge=1, le=100000)
    """Failed probes before the container is restarted; unset, enough for twice scaling.coldStartSeconds and at least a minute (failureThreshold x periodSeconds)."""


class LivenessProbe(ApiModel):
    """An HTTP liveness probe: a server that stops answering for failureThreshold x periodSeconds is restarted. It starts once the startup probe passed."""

    enabled: bool = True
    """Whether the pods have a liveness probe."""
    path: str | None = Field(default=None, pattern=r"^/", max_length=1024)
    """The HTTP path to probe; unset, readinessProbe.path."""
    period_seconds: int = Field(default=10, ge=1, le=300)
    """Seconds between probes."""
    timeout_seconds: int = Field(default=5, ge=1, le=300)
    """Seconds a probe may take (a busy server answers health checks slowly)."""
    failure_threshold: int = Field(default=3, ge=1, le=100)
    """Failed probes in a row before the container is restarted."""


# ---------------------------------------------------------------------------------------------
class PodSelector(ApiModel):
    """Pods selected by label (metav1.LabelSelector)."""

    match_labels: dict[str, str] = Field(default_factory=dict)
    """Labels a pod must carry, all of them."""
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list, max_length=16)
    """Set-based requirements, all of which must hold."""


class TopologySpreadConstraint(ApiModel):
    """How the replicas spread over a topology, such as zones or nodes (corev1.TopologySpreadConstraint)."""

    max_skew: int = Field(default=1, ge=1, le=1000)
    """The most the number of replicas may differ between two domains."""
    topology_key: str = Field(
        pattern=r"^([a-z0-9.\-]+/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$", max_length=316
    )
    """The node label whose values are the domains, such as topology.kubernetes.io/zone."""
    when_unsatisfiable: Literal["DoNotSchedule", "ScheduleAnyway"]
    """DoNotSchedule keeps a replica Pending rather than exceed maxSkew; ScheduleAnyway only prefers."""
    label_selector: PodSelector | None = None
    """The pods counted; unset, this service's own pods."""
    min_domains: int | None = Field(default=None, ge=1, le=1000)
    """With DoNotSchedule: the fewest domains to spread over (fewer eligible ones count as empty)."""
    node_affinity_policy: Literal["Honor", "Ignore"] | None = None
    """Whether only nodes matching the pods' node selector and affinity count (Honor, the default)."""
    node_taints_policy: Literal["Honor", "Ignore"] | None = None
    """Whether nodes with taints the pods do not tolerate count (Ignore, the default)."""

    cel_rules = (
        (
            "!has(self.minDomains) || self.whenUnsatisfiable == 'DoNotSchedule'",
            "minDomains needs whenUnsatisfiable: DoNotSchedule",
        ),
    )


# Rules across fields of spec.serving (kept here so inferenceservice.py only names them).
# The message names the first mount without a volume. The apiserver's cost estimate gives up on
# strings built from filter() or join() results ("exceeds budget by 100x"), not on indexing, so
# the mount is found by the index of its first `false` (no cel.bind in CRD rules: repeated).
_ORPHAN = (
    "self.volumeMounts[self.volumeMounts.map(m, self.volumes.exists(v, v.name == m.name)).indexOf(false)]"
)
SERVING_RULES: tuple[dict[str, str], ...] = (
    {
        "rule": "self.volumeMounts.all(m, self.volumes.exists(v, v.name == m.name))",
        "messageExpression": (
            f"'volumeMount ' + {_ORPHAN}.name + ' (at ' + {_ORPHAN}.mountPath + ') needs a volume named '"
            f" + {_ORPHAN}.name + ' in spec.serving.volumes'"
        ),
        "fieldPath": ".volumeMounts",
    },
    {
        "rule": "self.volumes.all(v, self.volumes.exists_one(w, w.name == v.name))",
        "message": "volume names must be unique",
        "fieldPath": ".volumes",
    },
    {
        "rule": "self.volumeMounts.all(m, self.volumeMounts.exists_one(n, n.mountPath == m.mountPath))",
        "message": "each volumeMount needs its own mountPath",
        "fieldPath": ".volumeMounts",
    },
    {
        "rule": (
            f"!has(self.shmSize) || (!self.volumes.exists(v, v.name == '{SHM_VOLUME}')"
            f" && !self.volumeMounts.exists(m, m.mountPath == '{SHM_PATH}'))"
        ),
        "message": (
            f"shmSize mounts a memory volume named {SHM_VOLUME} at {SHM_PATH} itself: "
            f"remove the volume {SHM_VOLUME} or the mount at {SHM_PATH}, or shmSize"
        ),
        "fieldPath": ".shmSize",
    },
)


def wire(model: ApiModel) -> dict[str, Any]:
    """A part of the spec as corev1 spells it: camelCase, unset fields left out."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)
