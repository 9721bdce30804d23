"""Checking an output against one of the published JSON Schemas, with readable failures."""

from __future__ import annotations

from typing import Any

import jsonschema

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def schema_errors(schema: dict[str, Any], instance: Any) -> list[str]:
    """Every violation as ``json/path: message``; empty when ``instance`` is valid."""
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(instance)]


def assert_valid_schema(schema: dict[str, Any]) -> None:
    """The schema itself is valid draft 2020-12 and says so."""
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == DRAFT
