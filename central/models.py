"""Request bodies, validated strictly by pydantic: unknown fields, wrong types and out-of-range values are
refused field by field (400), never coerced. Their JSON schemas feed the OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

INT32 = 2**31 - 1
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"

Text100 = Annotated[str, Field(min_length=1, max_length=100)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class DeviceInfo(Strict):
    serial: Text100
    model: Text100
    software_version: Text100


class ActivationRequest(Strict):
    kit_number: Annotated[str, Field(min_length=1, max_length=20)]
    activation_code: Annotated[str, Field(min_length=1, max_length=40)]
    device: DeviceInfo


class Scan(Strict):
    id: Annotated[str, Field(pattern=UUID_PATTERN, description="UUID made by the terminal: the idempotency key")]
    pass_number: Annotated[str, Field(min_length=1, max_length=64, description="as read; malformed is judged")]
    service: Annotated[int, Field(ge=1, le=INT32, description="service number in the référentiel")]
    point: Annotated[int, Field(ge=1, le=INT32, description="point de présence id")]
    entry_id: Annotated[str | None, Field(max_length=64)] = None
    scanned_at: AwareDatetime
    clock_synced: bool
    seq: Annotated[int, Field(ge=0, le=INT32, description="per-device sequence number")]
    boot_id: Annotated[str | None, Field(max_length=64)] = None
    monotonic: Annotated[float | None, Field(ge=0)] = None


class ScanBatch(Strict):
    scans: Annotated[list[Scan], Field(min_length=1, max_length=500)]


class Heartbeat(BaseModel):
    """What a device says about itself; free-form beyond the few known fields."""

    model_config = ConfigDict(extra="allow")
    software_version: Annotated[str | None, Field(max_length=100)] = None


class Ack(Strict):
    """A device's acknowledgement of a command: how far it got, and what came of it."""

    id: Annotated[str, Field(min_length=1, max_length=36)]
    status: Literal["received", "started", "done", "failed", "expired", "interrupted"]
    result: dict[str, Any] | None = None


class Report(Strict):
    """What a device applied of its desired state, and where its commands stand."""

    applied_generation: Annotated[int | None, Field(ge=0, le=INT32)] = None
    config: dict[str, Any] | None = None
    release: dict[str, Any] | None = None
    acks: Annotated[list[Ack], Field(max_length=100)] = []


def field_errors(error: ValidationError) -> dict[str, str]:
    """Pydantic's errors as ``{"scans.3.service": "Input should be ..."}``."""
    out: dict[str, str] = {}
    for item in error.errors(include_url=False, include_context=False, include_input=False):
        where = ".".join(str(p) for p in item["loc"]) or "body"
        out.setdefault(where, item["msg"])
    return out


def all_schemas() -> dict[str, dict[str, Any]]:
    """The request models' JSON schemas, nested ones hoisted, for ``components/schemas`` of the document."""
    out: dict[str, dict[str, Any]] = {}
    for model in (ActivationRequest, ScanBatch, Heartbeat, Report):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            out[name] = sub
        out[model.__name__] = schema
    return out
