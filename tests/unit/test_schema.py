"""The event JSON Schema (lsmtrace/schema/event.schema.json) against decoded
events, recordings and the docs: a field the code emits and the schema does not
know fails here, and so does a field the docs list and the schema lacks."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from lsmtrace.schema import event_schema

REPO = Path(__file__).resolve().parents[2]
RECORDINGS = REPO / "tests" / "data" / "recordings"


def validator() -> jsonschema.Draft202012Validator:
    schema = event_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def recorded_events() -> list[dict[str, Any]]:
    from lsmtrace.record import read_recording

    evs: list[dict[str, Any]] = []
    for p in sorted(RECORDINGS.glob("*.jsonl*")):
        if p.name not in ("future_version.jsonl", "not_a_recording.jsonl"):
            evs += read_recording(p).events
    return evs


def test_recordings_and_decoded_payloads_validate() -> None:
    from test_output import ALL_EVENTS  # decoded captures + hostile names

    v = validator()
    evs = recorded_events() + list(ALL_EVENTS)
    assert len(evs) > 100
    for ev in evs:
        errors = sorted(v.iter_errors(ev), key=str)
        assert not errors, f"{ev.get('hook')}: {errors[0].message}"


def test_schema_rejects_unknown_and_missing_fields() -> None:
    """The canary: the schema would catch drift."""
    v = validator()
    ev = recorded_events()[0]
    assert v.is_valid(ev)
    assert not v.is_valid({**ev, "new_field": 1})
    assert not v.is_valid({**ev, "object": {**ev["object"], "new_key": 1}})
    assert not v.is_valid({k: x for k, x in ev.items() if k != "verdict"})
    assert not v.is_valid({**ev, "verdict": "maybe"})


def test_docs_list_every_schema_field() -> None:
    """docs/events.md names each top-level field and object key of the schema."""
    docs = (REPO / "docs" / "events.md").read_text()
    named = set(re.findall(r"`([a-z_0-9]+)`", docs))
    schema = event_schema()
    missing = [k for k in schema["properties"] if k not in named]
    missing += [k for k in schema["$defs"]["object"]["properties"] if k not in named]
    assert not missing, f"docs/events.md does not mention {missing}"


@pytest.mark.parametrize("path", ["lsmtrace/schema/event.schema.json"])
def test_schema_ships_in_the_package(path: str) -> None:
    import tomllib

    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())
    data = cfg["tool"]["setuptools"]["package-data"]
    assert "*.json" in data["lsmtrace.schema"]
    assert (REPO / path).is_file()
    json.loads((REPO / path).read_text())


def test_would_deny_validates_and_is_documented() -> None:
    """What the live audit mode writes (a real LiveCheck over a fixture
    recording with a deviation) is what the schema and the docs say."""
    import copy
    import tempfile

    from lsmtrace.policy import generate, load, load_access_set
    from lsmtrace.policy.live import LiveCheck
    from lsmtrace.record import read_recording

    rec = RECORDINGS / "forking_daemon.jsonl"
    evs = copy.deepcopy(read_recording(rec).events)
    i = next(
        i for i, e in enumerate(evs) if e["object"].get("path") == "/srv/www/index.html"
    )
    evs[i]["object"] = {**evs[i]["object"], "path": "/etc/shadow"}
    v = validator()
    docs = (REPO / "docs" / "events.md").read_text()
    for target in ("apparmor", "selinux", "landlock", "tomoyo"):
        with tempfile.NamedTemporaryFile("w", suffix=".pol") as f:
            f.write(generate(target, load_access_set([str(rec)])))
            f.flush()
            lc = LiveCheck(load(f.name, target))
            marked = []
            for ev in copy.deepcopy(evs):
                lc.add(ev)
                if "would_deny" in ev:
                    marked.append(ev)
        assert marked, target
        for ev in marked:
            errors = sorted(v.iter_errors(ev), key=str)
            assert not errors, f"{target}: {errors[0].message}"
    assert not v.is_valid(
        {**marked[0], "would_deny": {**marked[0]["would_deny"], "x": 1}}
    )
    keys = event_schema()["$defs"]["would_deny"]["properties"]
    assert not [k for k in keys if f"`{k}`" not in docs]
