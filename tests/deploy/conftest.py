"""Session fixtures for the deploy/ tests (helpers live in deploy_testkit.py)."""

from __future__ import annotations

import shutil

import pytest
from deploy_testkit import RouterMetric, require_binary, router_metrics_contract


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
