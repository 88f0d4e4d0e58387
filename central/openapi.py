"""The OpenAPI 3.1 document of ``/api/v1``, served at ``/api/v1/openapi.json``.

Request bodies come from the pydantic models that validate them (``central.models``), so the two cannot
drift; response shapes are written here and checked against the running code by the schemathesis tests.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aptic.reasons import Flag, Reason
from central import models


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props) if required is None else required}


STR = {"type": "string"}
INT = {"type": "integer"}
BOOL = {"type": "boolean"}
NULL_STR = {"type": ["string", "null"]}
REASON = {"type": "string", "enum": [r.value for r in Reason]}
TOTALS = {"passes": INT, "gross_cents": INT, "fee_cents": INT, "net_cents": INT}

RESPONSES: dict[str, Any] = {
    "Error": _obj({"error": STR, "message": STR, "fields": {"type": "object", "additionalProperties": STR}}),
    "Organisation": _obj(
        {
            "id": INT,
            "name": STR,
            "siret": STR,
            "qualified": BOOL,
            "catalogue": {"type": "array", "items": INT},
            "mediateur_pin_hash": NULL_STR,
        }
    ),
    "Point": _obj(
        {
            "id": INT,
            "organisation_id": INT,
            "name": STR,
            "insee": STR,
            "departement": STR,
            "typologies": {"type": "array", "items": STR},
            "latitude": {"type": ["number", "null"]},
            "longitude": {"type": ["number", "null"]},
            "opening_hours": NULL_STR,
        }
    ),
    "Activation": _obj(
        {
            "device_id": INT,
            "token": STR,
            "organisation": {"$ref": "#/components/schemas/Organisation"},
            "points_de_presence": {"type": "array", "items": {"$ref": "#/components/schemas/Point"}},
        }
    ),
    "PassInfo": _obj(
        {"number": STR, "carnet": STR, "millesime": INT, "value_cents": INT, "commanditaire": STR, "valid_until": STR}
    ),
    "Validity": _obj(
        {
            "valid": BOOL,
            "reason": REASON,
            "message": STR,
            "warnings": {"type": "array", "items": STR},
            "pass": {"oneOf": [{"$ref": "#/components/schemas/PassInfo"}, {"type": "null"}]},
        }
    ),
    "ScanResult": _obj(
        {
            "id": STR,
            "status": {"type": "string", "enum": ["accepted", "flagged", "rejected"]},
            "reason": REASON,
            "message": STR,
            "flags": {
                "type": "array",
                "items": {"type": "string", "enum": [f.value for f in Flag]},
            },
            "payment_month": NULL_STR,
        }
    ),
    "ScanResults": _obj({"results": {"type": "array", "items": {"$ref": "#/components/schemas/ScanResult"}}}),
    "Order": _obj(
        {
            "id": INT,
            "commanditaire": STR,
            "millesime": INT,
            "value_cents": INT,
            "activated": BOOL,
            "cancelled": BOOL,
            "starts_on": NULL_STR,
            "valid_until": STR,
            "tolerance_until": STR,
            "restrictions": _obj(
                {
                    "territories": {"type": "array", "items": STR},
                    "territory_label": NULL_STR,
                    "place_types": {"type": "array", "items": STR},
                    "points": {"type": "array", "items": INT},
                    "services": {"type": "array", "items": INT},
                    "categories": {"type": "array", "items": STR},
                }
            ),
            "carnets": {"type": "array", "items": _obj({"first": STR, "last": STR, "size": INT})},
        }
    ),
    "Snapshot": _obj(
        {
            "cursor": STR,
            "full": BOOL,
            "generated_at": STR,
            "organisation": {"$ref": "#/components/schemas/Organisation"},
            "points_de_presence": {"type": "array", "items": {"$ref": "#/components/schemas/Point"}},
            "orders": {"type": "array", "items": {"$ref": "#/components/schemas/Order"}},
            "blocked_carnets": {"type": "array", "items": STR},
            "used_passes": {
                "type": "array",
                "items": _obj(
                    {"pass_number": STR, "service": INT, "organisation_id": INT, "on": STR, "place_name": STR}
                ),
            },
        }
    ),
    "Statement": _obj(
        {
            "organisation": _obj({"id": INT, "name": STR, "siret": STR}),
            "month": STR,
            "status": {"type": "string", "enum": ["open", "closed"]},
            "closed_at": NULL_STR,
            **TOTALS,
            "flagged": INT,
            "lines": {
                "type": "array",
                "items": _obj({"service": INT, "title": STR, "commanditaire": STR, **TOTALS}),
            },
            "by_service": {"type": "array", "items": _obj({"service": INT, "title": STR, **TOTALS})},
            "by_commanditaire": {"type": "array", "items": _obj({"commanditaire": STR, **TOTALS})},
            "carried_over": {"type": "array", "items": _obj({"from_month": STR, **TOTALS})},
            "notes": {"type": "array", "items": STR},
        }
    ),
    "HeartbeatAck": _obj({"status": STR, "server_time": STR}),
    "DesiredState": _obj(
        {
            "device_id": INT,
            "organisation_id": INT,
            "generation": INT,
            "config": {"type": "object", "description": "remote settings (aptic.settings), merged"},
            "software_version": NULL_STR,
            "commands": {
                "type": "array",
                "items": _obj({"id": STR, "kind": STR, "args": {"type": "object"}, "not_after": STR}),
            },
            "poll_after_s": {"type": "number"},
            "server_time": STR,
        }
    ),
    "Artifact": _obj(
        {
            "command_id": STR,
            "content_type": {"type": "string", "enum": ["application/gzip", "image/png"]},
            "size": INT,
            "sha256": STR,
            "received_at": STR,
        }
    ),
    "ReportAck": _obj(
        {
            "status": STR,
            "acks": {"type": "object", "additionalProperties": STR, "description": "command id: stored status"},
            "unknown": {"type": "array", "items": STR},
        }
    ),
}


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def _answer(description: str, ref: str) -> dict[str, Any]:
    return {"description": description, "content": _json(ref)}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "bad input (field-level errors)",
        401: "missing, unknown or revoked device token",
        403: "wrong kit number or activation code, or expired code",
        404: "unknown resource",
        409: "kit already activated; a command that brings back no file, or is finished",
        413: "body too large",
        415: "not the content type the command's kind brings back",
        429: "too many wrong codes: kit locked",
    }
    return {str(c): _answer(text[c], "Error") for c in codes}


SECURED = [{"device": []}]


@cache
def document() -> dict[str, Any]:
    """The whole OpenAPI document (built once)."""
    number = {"name": "number", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}}
    positive = {"type": "integer", "minimum": 1, "maximum": 999_999_999}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Pass #APTIC central API",
            "version": "1.0.0",
            "description": "Activates terminals, judges passes, ingests scans, computes statements.",
        },
        "servers": [{"url": "/"}],
        "components": {
            "schemas": {**models.all_schemas(), **RESPONSES},
            "securitySchemes": {"device": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/api/v1/health": {
                "get": {
                    "operationId": "health",
                    "responses": {
                        "200": {
                            "description": "alive",
                            "content": {"application/json": {"schema": _obj({"status": {"const": "ok"}})}},
                        }
                    },
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "responses": {
                        "200": {"description": "this document", "content": {"application/json": {"schema": {}}}}
                    },
                }
            },
            "/api/v1/activations": {
                "post": {
                    "operationId": "activate",
                    "summary": "Trade a kit number and activation code for a device token",
                    "requestBody": {"required": True, "content": _json("ActivationRequest")},
                    "responses": {
                        "201": _answer("device activated", "Activation"),
                        **_errors(400, 403, 409, 413, 429),
                    },
                }
            },
            "/api/v1/passes/{number}/validity": {
                "get": {
                    "operationId": "validity",
                    "security": SECURED,
                    "parameters": [
                        number,
                        {"name": "service", "in": "query", "required": True, "schema": positive},
                        {"name": "point", "in": "query", "required": False, "schema": positive},
                    ],
                    "responses": {"200": _answer("the verdict", "Validity"), **_errors(400, 401, 404)},
                }
            },
            "/api/v1/scans": {
                "post": {
                    "operationId": "pushScans",
                    "security": SECURED,
                    "requestBody": {"required": True, "content": _json("ScanBatch")},
                    "responses": {"200": _answer("one result per scan", "ScanResults"), **_errors(400, 401, 413)},
                }
            },
            "/api/v1/snapshot": {
                "get": {
                    "operationId": "snapshot",
                    "security": SECURED,
                    "parameters": [{"name": "since", "in": "query", "required": False, "schema": {"type": "string"}}],
                    "responses": {"200": _answer("offline data and a new cursor", "Snapshot"), **_errors(400, 401)},
                }
            },
            "/api/v1/statements": {
                "get": {
                    "operationId": "statement",
                    "security": SECURED,
                    "parameters": [
                        {
                            "name": "month",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "pattern": r"^\d{4}-\d{2}$"},
                        }
                    ],
                    "responses": {"200": _answer("the month's statement", "Statement"), **_errors(400, 401)},
                }
            },
            "/api/v1/heartbeat": {
                "post": {
                    "operationId": "heartbeat",
                    "security": SECURED,
                    "requestBody": {"required": True, "content": _json("Heartbeat")},
                    "responses": {"200": _answer("recorded", "HeartbeatAck"), **_errors(400, 401, 413)},
                }
            },
            "/api/v1/desired-state": {
                "get": {
                    "operationId": "desiredState",
                    "security": SECURED,
                    "description": "With If-None-Match set to the last ETag: 304 while the generation is unchanged.",
                    "responses": {
                        "200": _answer("what the device should be (ETag: its generation)", "DesiredState"),
                        "304": {"description": "unchanged since the ETag sent"},
                        **_errors(401),
                    },
                }
            },
            "/api/v1/report": {
                "post": {
                    "operationId": "report",
                    "security": SECURED,
                    "requestBody": {"required": True, "content": _json("Report")},
                    "responses": {
                        "200": _answer("recorded; acks only move forward", "ReportAck"),
                        **_errors(400, 401, 413),
                    },
                }
            },
            "/api/v1/commands/{command_id}/artifact": {
                "put": {
                    "operationId": "putArtifact",
                    "security": SECURED,
                    "summary": "Attach the file a command brought back (upload_logs: gzip, screenshot: PNG)",
                    "description": "Only by the device the command was sent to, before the command is finished; "
                    "5 MiB at most. Sent again, it replaces the first.",
                    "parameters": [{"name": "command_id", "in": "path", "required": True, "schema": STR}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            kind: {"schema": {"type": "string", "format": "binary"}}
                            for kind in ("application/gzip", "image/png")
                        },
                    },
                    "responses": {
                        "201": _answer("stored", "Artifact"),
                        "200": _answer("stored again: it replaced the first", "Artifact"),
                        **_errors(400, 401, 404, 409, 413, 415),
                    },
                }
            },
        },
    }
