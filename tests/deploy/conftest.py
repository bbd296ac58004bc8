"""Session fixtures for the deploy/ tests (helpers live in deploy_testkit.py)."""

from __future__ import annotations

import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_testkit import RouterMetric, require_binary, router_metrics_contract
from stack_testkit import Stack, start_stack


@pytest.fixture(scope="session")
def router_contract() -> dict[str, RouterMetric]:
    return router_metrics_contract()


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_binary("promtool")


@pytest.fixture(scope="session")
def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed on this machine")
    return path


@pytest.fixture
def stack(tmp_path: Path, standin_artifacts: Path) -> Iterator[Stack]:
    """The stack as `make up` runs it, on free ports; Ctrl-C (SIGINT) at the end."""
    stack = start_stack(tmp_path, standin_artifacts)
    yield stack
    if stack.proc.poll() is None:
        stack.proc.send_signal(signal.SIGINT)
        stack.proc.wait(timeout=90)
