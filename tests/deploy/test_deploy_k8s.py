"""Kubernetes manifests: every kustomize overlay renders (kubectl's built-in kustomize), every
object validates offline against the Kubernetes OpenAPI schema (kubernetes-validate, strict)
or, for the Prometheus Operator CRDs, against the vendored CRD schemas; and the objects fit together
(selectors, probes, drain, GPU, secrets)."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_testkit import DEPLOY, require_module, run

from deploy.prometheus.config import load_rule_groups

K8S = DEPLOY / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())
TARGETS = ["base", *(f"overlays/{o}" for o in OVERLAYS)]
# Oldest Kubernetes these manifests promise to work on, and the newest the validator knows.
K8S_VERSIONS = ["1.30.0", "1.37.0"]
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-v1.json",
}
SECRET_NAME = "router-api-keys"

Doc = dict[str, Any]


@cache
def _render(kubectl: str, target: str) -> tuple[Doc, ...]:
    result = run([kubectl, "kustomize", str(K8S / target)], timeout=120)
    assert result.returncode == 0, result.stderr
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def _find(docs: tuple[Doc, ...], kind: str, name: str) -> Doc:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, (kind, name)
    return matches[0]


def _strict(schema: Any) -> Any:
    """CRD schemas allow unknown fields (the API server prunes them silently); close every
    object that lists its properties, as kubernetes-validate --strict does, so typos fail."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            out.get("type") == "object"
            and "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def _validate(doc: Doc, version: str) -> None:
    require_module("kubernetes_validate")
    import jsonschema
    import kubernetes_validate

    crd = CRD_SCHEMAS.get((doc["apiVersion"], doc["kind"]))
    if crd is not None:
        schema = _strict(json.loads((DEPLOY / "schemas" / crd).read_text()))
        jsonschema.Draft7Validator(schema).validate(doc)
        return
    kubernetes_validate.validate(doc, version, strict=True)


def _pod_templates(docs: tuple[Doc, ...]) -> dict[str, Doc]:
    return {
        d["metadata"]["name"]: d["spec"]["template"]
        for d in docs
        if d["kind"] in {"Deployment", "StatefulSet"}
    }


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("target", TARGETS)
def test_manifests_validate(kubectl: str, target: str, version: str) -> None:
    docs = _render(kubectl, target)
    assert docs
    for doc in docs:
        try:
            _validate(doc, version)
        except Exception as exc:  # name the object in the failure
            name = f"{doc['kind']}/{doc['metadata']['name']}"
            raise AssertionError(f"{target}: {name}: {exc}") from exc


def test_validator_rejects_a_typo(kubectl: str) -> None:
    router = copy.deepcopy(_find(_render(kubectl, "base"), "Deployment", "router"))
    container = router["spec"]["template"]["spec"]["containers"][0]
    container["readynessProbe"] = container.pop("readinessProbe")
    require_module("kubernetes_validate")
    import kubernetes_validate

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(router, K8S_VERSIONS[0], strict=True)
    prod = _render(kubectl, "overlays/gpu-prod")
    monitor = copy.deepcopy(_find(prod, "ServiceMonitor", "router"))
    monitor["spec"]["endpoint"] = monitor["spec"].pop("endpoints")
    with pytest.raises(Exception, match="endpoint"):
        _validate(monitor, K8S_VERSIONS[0])


@pytest.mark.parametrize("target", TARGETS)
def test_selectors_and_references_resolve(kubectl: str, target: str) -> None:
    docs = _render(kubectl, target)
    templates = _pod_templates(docs)
    pod_labels = [t["metadata"]["labels"] for t in templates.values()]

    def selects(selector: dict[str, str]) -> bool:
        return any(selector.items() <= labels.items() for labels in pod_labels)

    for doc in docs:
        kind, spec = doc["kind"], doc.get("spec", {})
        if kind == "Service":
            assert selects(spec["selector"]), doc["metadata"]["name"]
        if kind in {"PodDisruptionBudget", "Deployment", "StatefulSet"}:
            assert selects(spec["selector"]["matchLabels"]), doc["metadata"]["name"]
        if kind == "HorizontalPodAutoscaler":
            ref = spec["scaleTargetRef"]
            assert ref["name"] in templates and ref["kind"] == "Deployment"
        if kind == "StatefulSet":
            _find(docs, "Service", spec["serviceName"])
        if kind == "ServiceMonitor":
            service = _find(docs, "Service", doc["metadata"]["name"])
            assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
            ports = {p["name"] for p in service["spec"]["ports"]}
            assert {e["port"] for e in spec["endpoints"]} <= ports
            # job label = the Service's app.kubernetes.io/name: the rules' job names.
            assert service["metadata"]["labels"][spec["jobLabel"]] in {"router", "triton"}
    for template in templates.values():
        for volume in template["spec"].get("volumes", []):
            if "persistentVolumeClaim" in volume:
                _find(docs, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
            if "configMap" in volume:
                _find(docs, "ConfigMap", volume["configMap"]["name"])
        for container in template["spec"]["containers"]:
            for source in container.get("envFrom", []):
                _find(docs, "ConfigMap", source["configMapRef"]["name"])


@pytest.mark.parametrize("target", TARGETS)
def test_api_keys_come_from_a_secret_not_in_the_repo(kubectl: str, target: str) -> None:
    docs = _render(kubectl, target)
    assert not [d for d in docs if d["kind"] == "Secret"]
    router = _find(docs, "Deployment", "router")["spec"]["template"]["spec"]["containers"][0]
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in router["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert set(refs) == {"ROUTER_API_KEYS", "ROUTER_ADMIN_KEY"}
    assert {r["name"] for r in refs.values()} == {SECRET_NAME}
    docs_text = (DEPLOY.parent / "docs" / "operations.md").read_text()
    assert f"create secret generic {SECRET_NAME}" in docs_text


@pytest.mark.parametrize("target", TARGETS)
def test_router_probes_and_graceful_drain(kubectl: str, target: str) -> None:
    router = _find(_render(kubectl, target), "Deployment", "router")
    pod = router["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    # Grace covers the preStop pause plus the router's own drain (uvicorn: 5 s).
    assert pod["terminationGracePeriodSeconds"] >= int(pre_stop[1]) + 10
    assert "replicas" not in router["spec"], "the HPA owns replicas"
    assert pod["securityContext"]["runAsNonRoot"] is True
    annotations = router["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "8080"


@pytest.mark.parametrize("target", TARGETS)
def test_triton_gets_a_gpu_and_health_probes(kubectl: str, target: str) -> None:
    triton = _find(_render(kubectl, target), "Deployment", "triton")
    pod = triton["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"]["nvidia.com/gpu.present"] == "true"
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["image"].startswith("nvcr.io/nvidia/tritonserver:")
    assert container["image"].endswith("-py3")
    annotations = triton["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "8002"


@pytest.mark.parametrize("target", TARGETS)
def test_images_are_pinned(kubectl: str, target: str) -> None:
    for name, template in _pod_templates(_render(kubectl, target)).items():
        for container in template["spec"]["containers"]:
            image = container["image"]
            assert ":" in image.rsplit("/", 1)[-1], f"{name}: {image} has no tag"
            assert not image.endswith(":latest"), f"{name}: {image}"


def test_overlays_differ_where_intended(kubectl: str) -> None:
    dev, prod = _render(kubectl, "overlays/dev"), _render(kubectl, "overlays/gpu-prod")
    assert {d["metadata"].get("namespace") for d in dev if d["kind"] != "Namespace"} == {
        "robot-policy-dev"
    }
    assert {d["metadata"].get("namespace") for d in prod if d["kind"] != "Namespace"} == {
        "robot-policy"
    }
    assert _find(dev, "HorizontalPodAutoscaler", "router")["spec"]["maxReplicas"] == 2
    prod_hpa = _find(prod, "HorizontalPodAutoscaler", "router")["spec"]
    assert {m["type"] for m in prod_hpa["metrics"]} == {"Resource", "Pods"}
    pods_metric = next(m for m in prod_hpa["metrics"] if m["type"] == "Pods")
    assert pods_metric["pods"]["metric"]["name"] == "router_inflight_requests"
    assert not [d for d in dev if d["kind"] == "ServiceMonitor"]
    assert {d["metadata"]["name"] for d in prod if d["kind"] == "ServiceMonitor"} == {
        "router", "triton"
    }
    assert _find(prod, "Deployment", "triton")["spec"]["replicas"] == 2
    rules = _find(prod, "PrometheusRule", "robot-policy-router")
    assert rules["metadata"]["namespace"] == "robot-policy"


def test_prometheusrule_is_generated_from_the_rule_files() -> None:
    from deploy.prometheus.prometheusrule import OUT_PATH, render

    assert OUT_PATH.read_text() == render(), (
        "stale: run python -m deploy.prometheus.prometheusrule"
    )
    groups = yaml.safe_load(OUT_PATH.read_text())["spec"]["groups"]
    assert groups == load_rule_groups()


def test_router_settings_names_exist_in_the_router(kubectl: str) -> None:
    settings = pytest.importorskip("router_service.settings").RouterSettings
    known = set()
    for name, field in settings.model_fields.items():
        alias = field.validation_alias
        known.add(alias if isinstance(alias, str) else f"ROUTER_{name.upper()}")
    docs = _render(kubectl, "base")
    config = _find(docs, "ConfigMap", "router-config")["data"]
    container = _find(docs, "Deployment", "router")["spec"]["template"]["spec"]["containers"][0]
    names = set(config) | {e["name"] for e in container["env"]}
    assert names <= known, sorted(names - known)


def test_kustomizations_only_reference_existing_files() -> None:
    for kfile in K8S.rglob("kustomization.yaml"):
        data = yaml.safe_load(kfile.read_text())
        for entry in data.get("resources", []) + data.get("components", []):
            assert (kfile.parent / entry).exists(), (kfile, entry)
        for entry in data.get("resources", []):
            path = kfile.parent / entry
            if path.is_file():
                assert all(yaml.safe_load_all(Path(path).read_text())), path
