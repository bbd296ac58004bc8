"""Fixtures for the model-repository tests (helpers live in repo_testkit.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from repo_testkit import PB_UTILS, Reference, Serving, install_standin

from policies.repository import generate

if TYPE_CHECKING:
    from tests.conftest import TritonServer


@pytest.fixture(scope="session")
def standin_repository(tmp_path_factory: pytest.TempPathFactory, standin_artifacts: Path) -> Path:
    out = tmp_path_factory.mktemp("standin_repo") / "model_repository"
    generate(standin_artifacts, out, "cpu", out.parent / "faults")
    return out


@pytest.fixture(scope="session")
def serving(standin_repository: Path) -> Iterator[Serving]:
    saved = sys.modules.get(PB_UTILS)
    pb, modules = install_standin()
    yield Serving(pb=pb, modules=modules, repository=standin_repository)
    if saved is None:
        sys.modules.pop(PB_UTILS, None)
    else:
        sys.modules[PB_UTILS] = saved


@pytest.fixture(scope="session")
def served(triton: TritonServer) -> Reference:
    """The in-process reference for whatever artifacts the session's Triton serves."""
    return Reference(triton.artifacts)


@pytest.fixture(scope="session")
def grpc(triton: TritonServer) -> Iterator[grpcclient.InferenceServerClient]:
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def http(triton: TritonServer) -> Iterator[httpclient.InferenceServerClient]:
    client = httpclient.InferenceServerClient(triton.http_url)
    yield client
    client.close()
