"""JSON Schema helpers for tool specs, so every plugin's schemas have one shape: objects close
their properties (``additionalProperties: false``) and list what is required, scalars carry a
description the model reads, bounds are stated where the upstream has them."""

from __future__ import annotations

from typing import Any, Dict, Sequence

Schema = Dict[str, Any]


def object(properties: Dict[str, Schema], required: Sequence[str] = ()) -> Schema:  # noqa: A001
    """An object with these ``properties``, ``required`` ones, and no other."""
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    schema["additionalProperties"] = False
    return schema


def string(description: str) -> Schema:
    return {"type": "string", "description": description}


def text(description: str, max_length: int) -> Schema:
    """A non-empty string of at most ``max_length`` characters."""
    return {"type": "string", "description": description, "minLength": 1, "maxLength": max_length}


def one_of(description: str, values: Sequence[str]) -> Schema:
    return {"type": "string", "description": description, "enum": list(values)}


def integer(description: str, minimum: int, maximum: int) -> Schema:
    return {"type": "integer", "description": description, "minimum": minimum, "maximum": maximum}


def number(description: str, minimum: float, maximum: float) -> Schema:
    return {
        "type": "number",
        "description": description,
        "minimum": float(minimum),
        "maximum": float(maximum),
    }


def nullable_number(description: str) -> Schema:
    """A number, or null when the upstream did not say (output schemas)."""
    return {"type": ["number", "null"], "description": description}


def nullable_string(description: str) -> Schema:
    return {"type": ["string", "null"], "description": description}


def array(description: str, items: Schema) -> Schema:
    return {"type": "array", "description": description, "items": items}
