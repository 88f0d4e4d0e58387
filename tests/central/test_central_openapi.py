"""schemathesis against ``/api/v1/openapi.json`` of the served app: for every operation, generated valid
and invalid requests never get a 5xx, and every response matches the document (status, content type,
body schema). ``APTIC_SCHEMATHESIS_EXAMPLES`` raises the number of examples per operation for a deeper run."""

from __future__ import annotations

import os
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = int(os.environ.get("APTIC_SCHEMATHESIS_EXAMPLES", "25"))  # more for a deeper run


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_conforms_to_its_openapi_document(central, mode):
    org, _ = central.organisation()
    device = central.device(org)
    central.carnets(2, 10)
    schema = schemathesis.openapi.from_url(central.url("/api/v1/openapi.json"))
    headers = {"Authorization": f"Bearer {device.token}"}
    # negative_data_rejection is left out: schemathesis may "break" a query by adding a parameter whose value
    # is None, which requests then drops, so a valid request goes out and its 200 reads as a failure.
    # Strictness is checked by the field-level tests instead.
    checks = CHECKS
    seen = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        seen += 1
        raw = operation.definition.raw
        if mode is GenerationMode.NEGATIVE and not (raw.get("parameters") or raw.get("requestBody")):
            continue  # nothing to get wrong

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=central.base, headers=headers, checks=checks)

        check()
    assert seen == 10


def test_document_lists_exactly_the_served_routes(tmp_path):
    from central.app import create_app
    from central.config import Settings
    from central.openapi import document

    app = create_app(Settings(tmp_path, f"sqlite:///{tmp_path / 'c.db'}", b"k"))
    served = {
        (re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {(path, method) for path, item in document()["paths"].items() for method in item}
    assert served == documented
