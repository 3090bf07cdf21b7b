"""The pure core imports without bcc or textual (STYLE.md, Boundaries).

Each check runs in a fresh interpreter, so that nothing another test imported
hides a heavy import here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PURE = (
    "abi",
    "events",
    "output",
    "hooks",
    "btf",
    "syscalls",
    "bpfgen",
    "hookgen",
    "session",
    "probe",
    "kheaders",
    "compilens",
    "cli",
    "doctor",
    "ringbuf",
    "proctree",
    "cgroups",
    "record",
    "sandbox",
    "metrics",
    "policy",
    "policy.model",
    "policy.live",
    "policy.apparmor",
    "policy.selinux",
    "policy.landlock",
    "policy.tomoyo",
    "tui.explain",
    "tui.sources",
    "commands.options",
    "commands.trace",
    "commands.record",
    "commands.replay",
    "commands.policy",
    "commands.sandbox",
    "commands.export",
    "commands.tui",
    "commands.hooks",
    "commands.doctor",
    "audit",
    "auditjoin",
    "auditnl",
)
HEAVY = ("bcc", "textual")

PROBE = """
import importlib, json, sys
mods = sys.argv[1:]
for m in mods:
    importlib.import_module(m)
print(json.dumps({"heavy": sorted(k for k in sys.modules
                                  if k.split(".")[0] in %r)}))
"""


def _imports(modules: list[str]) -> list[str]:
    res = subprocess.run(
        [sys.executable, "-c", PROBE % (HEAVY,), *modules],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, f"importing {modules} failed:\n{res.stderr}"
    return list(json.loads(res.stdout.strip().splitlines()[-1])["heavy"])


def test_pure_core_all_together() -> None:
    heavy = _imports([f"lsmtrace.{m}" for m in PURE])
    assert heavy == [], f"the pure core pulled in {heavy}"


@pytest.mark.parametrize("module", PURE)
def test_each_module_alone(module: str) -> None:
    heavy = _imports([f"lsmtrace.{module}"])
    assert heavy == [], f"lsmtrace.{module} pulled in {heavy}"


def test_cli_parser_without_heavy_imports() -> None:
    """Building the parser (what --help does) stays light too."""
    probe = PROBE.replace(
        "print(", "import lsmtrace.cli as c; c.build_parser().format_help()\nprint(", 1
    )
    res = subprocess.run(
        [sys.executable, "-c", probe % (HEAVY,)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1])["heavy"] == []


def test_probe_detects_a_heavy_import() -> None:
    """The check itself works: json imported on purpose is seen as 'heavy'."""
    res = subprocess.run(
        [sys.executable, "-c", PROBE % (("json",),), "json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "json" in json.loads(res.stdout)["heavy"]


def test_test_module_names_are_unique_across_tiers() -> None:
    """pytest imports test files by basename (no packages): two tiers with one
    name make a whole run fail to collect (tests/unit and tests/bpf both had
    test_policy_live.py once)."""
    seen: dict[str, Path] = {}
    for p in sorted((REPO / "tests").rglob("test_*.py")):
        assert p.name not in seen, f"{p} and {seen[p.name]} share a module name"
        seen[p.name] = p
