"""The open data the central publishes: its qualified places in LaMednum's national format.

``schema.json`` here is the Frictionless Table Schema of *standard-mediation-num* v1.0.2 (see
``SCHEMA.md``: where it comes from, its licence, how it was transcribed). The export itself lives in
``central.services.open_data``, its public URLs in ``central.open_data_views``.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

SCHEMA_FILE = "schema.json"


@cache
def table_schema() -> dict[str, Any]:
    """The Table Schema as a dict (read once from the package)."""
    text = resources.files(__package__).joinpath(SCHEMA_FILE).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def field_names() -> tuple[str, ...]:
    """The 32 column names, in the schema's order: the CSV header and the JSON objects' keys."""
    return tuple(field["name"] for field in table_schema()["fields"])
