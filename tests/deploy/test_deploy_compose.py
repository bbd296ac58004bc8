"""The single-GPU-host compose file: valid against the Compose Specification JSON schema
(vendored in deploy/schemas), and consistent with the images, settings and files it names."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
import yaml
from deploy_testkit import DEPLOY, REPO_ROOT, require_module

COMPOSE = DEPLOY / "compose" / "docker-compose.yml"
SCHEMA = DEPLOY / "schemas" / "compose-spec.json"
# What `.env` would hold (env.example lists the same names).
SAMPLE_ENV = {
    "ROUTER_API_KEYS": "k1,k2",
    "ROUTER_ADMIN_KEY": "admin",
    "GRAFANA_ADMIN_PASSWORD": "pw",
}


def _interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error} substitution, applied to strings."""
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def repl(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if name in env and (env[name] or op != ":-"):
            return env[name]
        if op == ":-":
            return arg or ""
        raise KeyError(f"${{{name}}} required: {arg}")

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", repl, value)


def _validator() -> Any:
    require_module("jsonschema")
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(
        schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def test_compose_file_matches_the_compose_specification() -> None:
    validator = _validator()
    raw = _compose()
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(raw)]
    assert errors == []
    interpolated = _interpolate(raw, SAMPLE_ENV)
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(interpolated)]
    assert errors == []


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["services"]["router"].__setitem__("imagee", "x"),
        lambda d: d["services"]["triton"]["deploy"]["resources"]["reservations"].__setitem__(
            "devices", "all"
        ),
        lambda d: d["services"]["redis"].__setitem__("command", 5),
        lambda d: d.__setitem__("volume", {}),
    ],
    ids=["unknown-service-key", "devices-not-a-list", "command-a-number", "unknown-top-key"],
)
def test_schema_rejects_broken_files(mutate: Any) -> None:
    """The schema check is not a formality: it rejects typical mistakes."""
    broken = copy.deepcopy(_compose())
    mutate(broken)
    assert list(_validator().iter_errors(broken))


def test_required_secrets_are_not_in_the_file() -> None:
    with pytest.raises(KeyError):
        _interpolate(_compose(), {})
    env = _compose()["services"]["router"]["environment"]
    for key in ("ROUTER_API_KEYS", "ROUTER_ADMIN_KEY"):
        assert env[key].startswith(f"${{{key}:?"), key
    example = (DEPLOY / "compose" / "env.example").read_text()
    for key in SAMPLE_ENV:
        assert re.search(rf"^{key}=$", example, re.M), f"env.example: {key} must be empty"


def test_triton_gets_a_gpu_and_the_gpu_repository() -> None:
    triton = _compose()["services"]["triton"]
    assert re.fullmatch(r"nvcr\.io/nvidia/tritonserver:\d\d\.\d\d-py3", triton["image"])
    (device,) = triton["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert "../../build/gpu_model_repository/ci:/models:ro" in triton["volumes"]
    assert "--model-repository=/models" in triton["command"]
    assert "/v2/health/ready" in " ".join(triton["healthcheck"]["test"])


def test_router_settings_names_exist_in_the_router() -> None:
    """Every router environment variable the compose file sets is a RouterSettings field."""
    settings = pytest.importorskip("router_service.settings").RouterSettings
    known = set()
    for name, field in settings.model_fields.items():
        alias = field.validation_alias
        known.add(alias if isinstance(alias, str) else f"ROUTER_{name.upper()}")
    env = _compose()["services"]["router"]["environment"]
    assert set(env) <= known, sorted(set(env) - known)


def test_router_is_built_from_the_root_dockerfile_and_mounts_exist() -> None:
    compose = _compose()
    build = compose["services"]["router"]["build"]
    assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == (
        REPO_ROOT / "Dockerfile"
    )
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith("."):
                continue  # a named volume
            if source.startswith("../../build/"):
                continue  # generated: make gpu-repository
            assert (COMPOSE.parent / source).exists(), (name, source)
    prom = compose["services"]["prometheus"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    assert "../prometheus:/etc/prometheus:ro" in prom["volumes"]
