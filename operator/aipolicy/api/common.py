"""Types shared by the three kinds: money, durations, quantities, conditions, selectors.

Conventions follow the Kubernetes API conventions: camelCase JSON, durations as strings such as
``"5m"``, money as decimal strings (never floats), CamelCase enums, and standard conditions.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from croniter import croniter
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

GROUP = "aipolicy.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


def _add_cel_rules(schema: dict[str, Any], cls: type[BaseModel]) -> None:
    """Copy a model's CEL rules into its JSON schema (and so into the CRD)."""
    rules = getattr(cls, "cel_rules", ())
    if rules:
        # a (rule, message) pair, or a whole x-kubernetes-validations entry (messageExpression,
        # fieldPath) when the message must name what is wrong
        schema["x-kubernetes-validations"] = [
            dict(rule) if isinstance(rule, dict) else {"rule": rule[0], "message": rule[1]} for rule in rules
        ]


class ApiModel(BaseModel):
    """Base of every API object part: camelCase on the wire, unknown fields refused.

    Field docstrings become descriptions in the CRD, so `kubectl explain` shows them.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
        frozen=True,
        json_schema_extra=_add_cel_rules,
    )

    #: CEL rules across fields, copied into the CRD as x-kubernetes-validations.
    cel_rules: ClassVar[tuple[tuple[str, str] | dict[str, str], ...]] = ()


class ApiStatus(ApiModel):
    """Base of the status models: the controllers build them up field by field."""

    model_config = ConfigDict(frozen=False)


# ---------------------------------------------------------------------------------------------
# Durations: Go-style strings ("90s", "5m", "1h30m", "7d"), the form kubectl users know.
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+$"
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@functools.lru_cache(maxsize=1024)  # pure, and read on every tick of every object
def parse_duration(text: str) -> timedelta:
    """Turn ``"1h30m"`` into a timedelta; raises ValueError naming what is expected."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(
            f"{text!r} is not a duration; expected a number and unit, such as 30s, 5m, 1h30m, 7d"
        )
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
    return timedelta(seconds=seconds)


def _check_duration(text: str) -> str:
    parse_duration(text)
    return text


Duration = Annotated[
    str,
    StringConstraints(pattern=DURATION_PATTERN, max_length=32),
    AfterValidator(_check_duration),
]

# ---------------------------------------------------------------------------------------------
# Money: a non-negative decimal string with up to 6 fractional digits (sub-cent token prices).
MONEY_PATTERN = r"^[0-9]{1,12}(\.[0-9]{1,6})?$"
Money = Annotated[str, StringConstraints(pattern=MONEY_PATTERN, max_length=20)]
CURRENCY_PATTERN = r"^[A-Z]{3}$"
Currency = Annotated[str, StringConstraints(pattern=CURRENCY_PATTERN)]


def money(text: str) -> Decimal:
    """The Decimal value of a Money string."""
    return Decimal(text)


# ---------------------------------------------------------------------------------------------
# Kubernetes resource quantities ("500m", "16Gi"), validated as the apiserver does.
QUANTITY_PATTERN = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
Quantity = Annotated[str, StringConstraints(pattern=QUANTITY_PATTERN, max_length=64)]

# A DNS-1123 subdomain (object names) and label (Service names).
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
ObjectName = Annotated[str, StringConstraints(pattern=NAME_PATTERN, min_length=1, max_length=253)]
DNS_LABEL_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"


# ---------------------------------------------------------------------------------------------
# Schedules: a five-field cron expression in an IANA time zone.
CRON_PATTERN = (
    r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)"
    r"|(\S+\s+){4}\S+)$"
)


def _check_cron(text: str) -> str:
    if not croniter.is_valid(text):
        raise ValueError(
            f"{text!r} is not a valid cron expression; expected five fields, such as '0 8 * * 1-5'"
        )
    return text


def _check_time_zone(text: str) -> str:
    try:
        zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(
            f"{text!r} is not an IANA time zone; expected a name such as Europe/Paris or UTC"
        ) from error
    return text


Cron = Annotated[str, StringConstraints(pattern=CRON_PATTERN, max_length=100), AfterValidator(_check_cron)]
TimeZone = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$", max_length=64),
    AfterValidator(_check_time_zone),
]


def cel_time_zone_rule(field: str) -> str:
    """A CEL rule that a time zone field names a zone the apiserver knows.

    The apiserver's CEL library carries the IANA database: getHours() with an unknown zone fails,
    and a rule that fails refuses the object.
    """
    return f"!has(self.{field}) || timestamp('2000-01-01T00:00:00Z').getHours(self.{field}) >= 0"


Enforcement = Literal["Enforce", "DryRun"]


# ---------------------------------------------------------------------------------------------
# Label selectors, as metav1.LabelSelector.
class LabelSelectorRequirement(ApiModel):
    key: str = Field(min_length=1, max_length=317)
    """The label key that the selector applies to."""
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    """How the key relates to the values."""
    values: list[str] = Field(default_factory=list, max_length=64)
    """Values for In and NotIn; empty for Exists and DoesNotExist."""

    cel_rules = (
        (
            "self.operator in ['In', 'NotIn'] ? size(self.values) > 0 : size(self.values) == 0",
            "values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist",
        ),
    )


class LabelSelector(ApiModel):
    """Selects InferenceServices by label, in the resource's own namespace only."""

    match_labels: dict[str, str] = Field(default_factory=dict)
    """Labels an InferenceService must carry, all of them."""
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list, max_length=16)
    """Set-based requirements, all of which must hold."""

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether an object with these labels is selected (an empty selector selects all)."""
        if any(labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        for req in self.match_expressions:
            present = req.key in labels
            value = labels.get(req.key)
            ok = {
                "In": present and value in req.values,
                "NotIn": not present or value not in req.values,
                "Exists": present,
                "DoesNotExist": not present,
            }[req.operator]
            if not ok:
                return False
        return True


# ---------------------------------------------------------------------------------------------
# Conditions, as metav1.Condition.
ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """A standard Kubernetes condition (metav1.Condition)."""

    type: str
    """The aspect this condition reports, in CamelCase, such as Ready."""
    status: ConditionStatus
    """True, False or Unknown."""
    reason: str = Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", max_length=1024)
    """A CamelCase word saying why the condition has this status."""
    message: str = Field(default="", max_length=32768)
    """A sentence for humans with the details."""
    last_transition_time: datetime
    """When the status last changed."""
    observed_generation: int = 0
    """The .metadata.generation the condition was computed from."""


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int,
    now: datetime,
) -> list[Condition]:
    """Return conditions with one set; lastTransitionTime moves only when the status changes."""
    previous = next((c for c in conditions if c.type == type_), None)
    since = previous.last_transition_time if previous and previous.status == status else now
    updated = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )
    return [c for c in conditions if c.type != type_] + [updated]


def find_condition(conditions: list[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


class ObjectMeta(ApiModel):
    """The part of metadata the operator reads."""

    model_config = ConfigDict(extra="ignore")

    name: str
    namespace: str = ""
    generation: int = 0
    uid: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    creation_timestamp: datetime | None = None


def json_dict(model: BaseModel) -> dict[str, Any]:
    """The wire form of a model: camelCase, no unset optionals."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)
