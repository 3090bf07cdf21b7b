"""The published JSON Schema of the event form (docs/events.md): the contract
of `trace --json`, recordings and `replay --json`. The tests validate every
event of the native and VM runs against it, so docs and code cannot drift."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def event_schema() -> dict[str, Any]:
    text = (resources.files(__package__) / "event.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema
