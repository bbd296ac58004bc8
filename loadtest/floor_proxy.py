"""The floor of a naive router design: a minimal FastAPI endpoint that parses the body and
forwards it to Triton with one unary gRPC `ModelInfer` per request (a prebuilt KServe request
with `raw_input_contents`, one persistent `grpc.aio` channel). No routing, deadlines, shedding,
batching, metrics or logging: whatever the router spends above this per request is the price of
what it does; below it, only batching (fewer Triton calls than requests) can take it.

Same API as the baseline proxy (`POST /v1/act/{ensemble}`), so the same load-test target drives
it:

    python -m loadtest.floor_proxy --triton-grpc 127.0.0.1:8001 --port 8091
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import numpy as np
from fastapi import FastAPI, HTTPException
from tritonclient.grpc import service_pb2, service_pb2_grpc

from loadtest.baseline_proxy import ActBody


def _request(ensemble: str, body: ActBody) -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name=ensemble)
    tensors = [("observation", body.observation.state)]
    if body.task_onehot is not None:
        tensors.append(("task_onehot", body.task_onehot))
    for name, values in tensors:
        spec = request.inputs.add()
        spec.name, spec.datatype = name, "FP32"
        spec.shape.extend([1, len(values)])
        request.raw_input_contents.append(np.asarray(values, dtype=np.float32).tobytes())
    request.outputs.add().name = "action"
    return request


def create_app(triton_grpc: str) -> FastAPI:
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        channel = grpc.aio.insecure_channel(triton_grpc)
        state["stub"] = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        yield
        await channel.close()

    app = FastAPI(title="floor proxy", lifespan=lifespan)

    @app.post("/v1/act/{ensemble}")
    async def act(ensemble: str, body: ActBody) -> dict[str, Any]:
        try:
            reply = await state["stub"].ModelInfer(_request(ensemble, body), timeout=5.0)
        except grpc.aio.AioRpcError as err:
            raise HTTPException(status_code=502, detail=err.details()) from None
        action = np.frombuffer(reply.raw_output_contents[0], dtype=np.float32)
        return {"action": action.tolist(), "route": ensemble}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def app_from_env() -> FastAPI:
    return create_app(os.environ.get("FLOOR_TRITON_GRPC", "127.0.0.1:8001"))


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m loadtest.floor_proxy", description=__doc__)
    parser.add_argument("--triton-grpc", default="127.0.0.1:8001")
    parser.add_argument("--port", type=int, default=8091)
    args = parser.parse_args(argv)
    os.environ["FLOOR_TRITON_GRPC"] = args.triton_grpc
    uvicorn.run("loadtest.floor_proxy:app_from_env", factory=True, host="127.0.0.1",
                port=args.port, loop="uvloop", http="httptools", log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main()
