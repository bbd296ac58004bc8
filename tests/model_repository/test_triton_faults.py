"""Fault injection: a policy served by the real Triton that sleeps or fails on demand."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from repo_testkit import Reference, infer
from tritonclient.utils import InferenceServerException

if TYPE_CHECKING:
    from tests.conftest import TritonServer

pytestmark = [pytest.mark.triton, pytest.mark.slow]


def _specialist(served: Reference) -> str:
    return next(e for e in served.ensembles if e.startswith("specialist_"))


def _timed_infer(
    client: grpcclient.InferenceServerClient, ensemble: str, served: Reference
) -> float:
    start = time.perf_counter()
    infer(client, grpcclient, ensemble, served.inputs(ensemble, served.observations(1)))
    return time.perf_counter() - start


def test_delay_on_demand_slows_only_that_policy(
    triton_faults: TritonServer, grpc: grpcclient.InferenceServerClient, served: Reference
) -> None:
    slow = _specialist(served)
    triton_faults.set_fault(f"policy_{slow}", delay_ms=250.0, delay_prob=1.0)
    elapsed = _timed_infer(grpc, slow, served)
    assert elapsed >= 0.25
    elapsed = _timed_infer(grpc, "generalist", served)
    assert elapsed < 0.25
    triton_faults.clear_faults()
    elapsed = _timed_infer(grpc, slow, served)
    assert elapsed < 0.25


def test_failure_on_demand_is_a_per_request_error(
    triton_faults: TritonServer,
    grpc: grpcclient.InferenceServerClient,
    http: httpclient.InferenceServerClient,
    served: Reference,
) -> None:
    failing = _specialist(served)
    triton_faults.set_fault(f"policy_{failing}", fail_prob=1.0)
    with pytest.raises(InferenceServerException) as error:
        _timed_infer(grpc, failing, served)
    assert error.value.status() == "StatusCode.UNAVAILABLE"
    assert f"policy_{failing}: injected failure" in error.value.message()
    with pytest.raises(InferenceServerException, match="injected failure") as http_error:
        infer(http, httpclient, failing, served.inputs(failing, served.observations(1)))
    assert http_error.value.status() == "503"
    _timed_infer(grpc, "generalist", served)  # other policies are unaffected
    triton_faults.clear_faults()
    _timed_infer(grpc, failing, served)


def test_nan_action_is_stopped_by_the_safety_envelope(
    triton_faults: TritonServer, grpc: grpcclient.InferenceServerClient, served: Reference
) -> None:
    ensemble = _specialist(served)
    triton_faults.set_fault(f"policy_{ensemble}", nan_prob=1.0)
    with pytest.raises(InferenceServerException) as error:
        _timed_infer(grpc, ensemble, served)
    assert error.value.status() == "StatusCode.INTERNAL"
    assert "non-finite action: row 0 index 0 is nan" in error.value.message()
