"""Every ensemble served by the real tritonserver, over KServe v2 gRPC and HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
import tritonclient.http as httpclient
from repo_testkit import Reference, infer
from tritonclient.utils import InferenceServerException

if TYPE_CHECKING:
    from tests.conftest import TritonServer

pytestmark = [pytest.mark.triton, pytest.mark.slow]


@pytest.fixture(params=["grpc", "http"])
def call(
    request: pytest.FixtureRequest,
    grpc: grpcclient.InferenceServerClient,
    http: httpclient.InferenceServerClient,
) -> Callable[[str, dict[str, np.ndarray]], np.ndarray]:
    client, module = (grpc, grpcclient) if request.param == "grpc" else (http, httpclient)
    return lambda ensemble, inputs: infer(client, module, ensemble, inputs)


def test_every_ensemble_is_ready_and_names_its_weights(
    grpc: grpcclient.InferenceServerClient, served: Reference
) -> None:
    assert grpc.is_server_ready()
    for ensemble in served.ensembles:
        assert grpc.is_model_ready(ensemble)
        config = grpc.get_model_config(ensemble).config
        assert config.parameters["policy_version"].string_value == served.versions[ensemble]
        metadata = grpc.get_model_metadata(ensemble)
        generalist = ensemble in served.generalists
        expected = ["observation", "task_onehot"] if generalist else ["observation"]
        assert [i.name for i in metadata.inputs] == expected
        assert [o.name for o in metadata.outputs] == ["action"]


@pytest.mark.parametrize("rows", [1, 7])
def test_ensemble_action_equals_in_process_reference(
    call: Callable[[str, dict[str, np.ndarray]], np.ndarray], served: Reference, rows: int
) -> None:
    for seed, ensemble in enumerate(served.ensembles):
        inputs = served.inputs(ensemble, served.observations(rows, seed=seed))
        if ensemble in served.generalists:  # every task's one-hot, not only the first
            inputs["task_onehot"] = np.eye(len(served.manifest.tasks), dtype=np.float32)[
                np.arange(rows) % len(served.manifest.tasks)
            ]
        action = call(ensemble, inputs)
        assert action.shape == (rows, served.manifest.action_dim)
        np.testing.assert_allclose(action, served.action(ensemble, inputs), rtol=0, atol=1e-5)
        assert np.all(action >= served.low) and np.all(action <= served.high)


def test_multi_row_request_with_one_bad_row_fails_as_a_whole(
    grpc: grpcclient.InferenceServerClient, http: httpclient.InferenceServerClient,
    served: Reference,
) -> None:
    """One request gets one response: a bad row fails its whole request, nothing else."""
    ensemble = served.ensembles[-1]
    obs = served.observations(4)
    obs[2, 11] = np.nan
    with pytest.raises(InferenceServerException) as grpc_error:
        infer(grpc, grpcclient, ensemble, served.inputs(ensemble, obs))
    assert grpc_error.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "row 2 index 11 is nan" in grpc_error.value.message()
    with pytest.raises(InferenceServerException) as http_error:
        infer(http, httpclient, ensemble, served.inputs(ensemble, obs))
    assert http_error.value.status() == "400"
    assert "row 2 index 11 is nan" in http_error.value.message()
    good = served.inputs(ensemble, obs[[0, 1, 3]])
    np.testing.assert_allclose(
        infer(grpc, grpcclient, ensemble, good), served.action(ensemble, good), atol=1e-5
    )


def _batched_executions(client: grpcclient.InferenceServerClient, model: str) -> int:
    """How many times `model` executed a batch of more than one request so far."""
    stats = client.get_inference_statistics(model).model_stats[0]
    return sum(b.compute_infer.count for b in stats.batch_stats if b.batch_size > 1)


async def _burst(
    triton: TritonServer, ensemble: str, inputs: list[dict[str, np.ndarray]]
) -> list[Any]:
    async with grpcaio.InferenceServerClient(triton.grpc_url) as client:

        async def one(values: dict[str, np.ndarray]) -> Any:
            tensors = []
            for name, value in values.items():
                tensor = grpcaio.InferInput(name, list(value.shape), "FP32")
                tensor.set_data_from_numpy(value)
                tensors.append(tensor)
            return await client.infer(ensemble, tensors)

        return list(await asyncio.gather(*(one(v) for v in inputs), return_exceptions=True))


async def test_nan_request_among_concurrent_ones_fails_alone(
    triton: TritonServer, grpc: grpcclient.InferenceServerClient, served: Reference
) -> None:
    """Concurrent requests are batched by the dynamic batcher; only the NaN one fails."""
    ensemble = "generalist"
    obs = served.observations(24, seed=3)
    bad = {5, 17}
    rows = []
    for i in range(len(obs)):
        row = obs[i : i + 1].copy()
        if i in bad:
            row[0, i] = np.nan
        rows.append(served.inputs(ensemble, row))
    batched_before = _batched_executions(grpc, "preprocess")
    for _ in range(5):  # until the batcher has grouped requests at least once
        results = await _burst(triton, ensemble, rows)
        for i, result in enumerate(results):
            if i in bad:
                assert isinstance(result, InferenceServerException), result
                assert f"row 0 index {i} is nan" in result.message()
            else:
                assert not isinstance(result, BaseException), result
                np.testing.assert_allclose(
                    result.as_numpy("action"), served.action(ensemble, rows[i]), atol=1e-5
                )
        if _batched_executions(grpc, "preprocess") > batched_before:
            break
    else:
        pytest.fail("preprocess never executed more than one request at once")


LARGE_GENERALIST = "generalist_large"


def test_large_generalist_is_a_transformer_served_as_its_own_ensemble(
    triton: TritonServer, grpc: grpcclient.InferenceServerClient, served: Reference
) -> None:
    """The transformer generalist (issue 10): its own ensemble, batches of N rows in one pass."""
    if LARGE_GENERALIST not in served.generalists:
        pytest.skip("stand-in artifacts have no transformer generalist (make models builds one)")
    card = json.loads((triton.artifacts / LARGE_GENERALIST / "model_card.json").read_text())
    assert card["parameter_count"] >= 1_000_000
    assert card["architecture"].startswith("transformer")
    config = grpc.get_model_config(LARGE_GENERALIST).config
    assert [s.model_name for s in config.ensemble_scheduling.step] == [
        "preprocess", f"policy_{LARGE_GENERALIST}", "postprocess"]
    obs = served.observations(9, seed=11)
    inputs = served.inputs(LARGE_GENERALIST, obs)
    inputs["task_onehot"] = np.eye(len(served.manifest.tasks), dtype=np.float32)[
        np.arange(9) % len(served.manifest.tasks)]
    batched = infer(grpc, grpcclient, LARGE_GENERALIST, inputs)
    singles = np.concatenate([
        infer(grpc, grpcclient, LARGE_GENERALIST, {k: v[i:i + 1] for k, v in inputs.items()})
        for i in range(9)])
    np.testing.assert_allclose(batched, served.action(LARGE_GENERALIST, inputs), atol=1e-5)
    np.testing.assert_allclose(batched, singles, atol=1e-5)
    # It is a different policy from the MLP generalist, not a copy of it.
    assert not np.allclose(batched, infer(grpc, grpcclient, "generalist", inputs), atol=1e-3)
