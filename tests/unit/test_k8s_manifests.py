"""deploy/k8s/*.yaml against the Kubernetes schemas, offline.

kubernetes-validate (PyPI) ships the OpenAPI schemas of each Kubernetes release
in the package, so this runs without a cluster or network. Built-in kinds are
validated strictly (unknown fields are errors) against the oldest release the
DaemonSet targets (`appArmorProfile` in securityContext is Kubernetes >= 1.30)
and the newest the package knows. Two documents have no schema there: the
prometheus-operator CRD ServiceMonitor and kustomize's Kustomization; for them
the test checks what ties them to the validated resources (selectors, port
names, namespace, the resource list), which is what breaks a deployment.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

kv = pytest.importorskip("kubernetes_validate", reason="pip install -e '.[test]'")
yaml = pytest.importorskip("yaml", reason="PyYAML comes with kubernetes-validate")

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
VERSIONS = ("1.30.0", kv.latest_version())
NO_SCHEMA = {"ServiceMonitor", "Kustomization"}


def documents() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for f in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text()):
            if doc:
                out.append((f.name, doc))
    return out


def by_kind() -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for _, d in documents()}


DOCS = documents()


def test_every_manifest_is_a_known_document() -> None:
    kinds = sorted(d["kind"] for _, d in DOCS)
    assert kinds == sorted(
        ["Namespace", "DaemonSet", "Service", "ServiceMonitor", "Kustomization"]
    ), kinds


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("name", "doc"),
    [(n, d) for n, d in DOCS if d["kind"] not in NO_SCHEMA],
    ids=[n for n, d in DOCS if d["kind"] not in NO_SCHEMA],
)
def test_builtin_kinds_validate_strictly(
    name: str, doc: dict[str, Any], version: str
) -> None:
    kv.validate(doc, version, strict=True)  # raises ValidationError


def test_the_validator_rejects_a_broken_daemonset() -> None:
    """Canary: strict validation does see a misspelt field and a wrong type."""
    ds = by_kind()["DaemonSet"]
    bad = copy.deepcopy(ds)
    bad["spec"]["template"]["spec"]["hostPid"] = True  # hostPID
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, kv.latest_version(), strict=True)
    bad = copy.deepcopy(ds)
    bad["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "x"
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, kv.latest_version(), strict=True)


@pytest.mark.parametrize("kind", sorted(NO_SCHEMA))
def test_no_schema_kinds_are_really_unknown_to_the_validator(kind: str) -> None:
    """Should a release of kubernetes-validate ship them, validate them instead."""
    with pytest.raises(kv.SchemaNotFoundError):
        kv.validate(by_kind()[kind], kv.latest_version(), strict=True)


def test_service_selects_the_daemonset_pods_and_port() -> None:
    k = by_kind()
    pod = k["DaemonSet"]["spec"]["template"]
    labels = pod["metadata"]["labels"]
    svc = k["Service"]["spec"]
    assert svc["selector"].items() <= labels.items()
    assert k["DaemonSet"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ports = {
        p["name"]: p["containerPort"]
        for c in pod["spec"]["containers"]
        for p in c.get("ports", [])
    }
    for p in svc["ports"]:
        assert p["targetPort"] in ports or p["targetPort"] in ports.values(), p


def test_servicemonitor_scrapes_the_service() -> None:
    k = by_kind()
    sm, svc = k["ServiceMonitor"], k["Service"]
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    spec = sm["spec"]
    assert spec["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert svc["metadata"]["namespace"] in spec["namespaceSelector"]["matchNames"]
    names = {p["name"] for p in svc["spec"]["ports"]}
    assert spec["endpoints"]
    for ep in spec["endpoints"]:
        assert ep["port"] in names, ep
        assert ep["path"] == "/metrics"


def test_namespace_and_kustomization_cover_everything() -> None:
    k = by_kind()
    ns = k["Namespace"]["metadata"]["name"]
    for name, d in DOCS:
        if d["kind"] not in ("Namespace", "Kustomization"):
            assert d["metadata"]["namespace"] == ns, name
    listed = k["Kustomization"]["resources"]
    files = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == files
