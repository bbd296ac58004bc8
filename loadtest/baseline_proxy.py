"""The proxy people hand-write in front of Triton: the baseline the router is compared with.

One endpoint, `POST /v1/act/{ensemble}` with `{"robot_id", "episode_id", "observation":
{"state": [...]}, "task_onehot"?: [...]}`: it validates the body with pydantic, rewrites it as a
KServe v2 JSON request, forwards it to Triton's `/v2/models/{ensemble}/infer` with httpx and
returns `{"action": [...], "route": ensemble}`. No routing, no deadlines, no shedding: the caller
names the ensemble. It is deliberately the straightforward version, not a tuned one.

Client modes: `per-request` opens a new `httpx.AsyncClient` for every request (the common first
draft), `shared` keeps one client and its connection pool for the app's lifetime.

    python -m loadtest.baseline_proxy --triton-url http://127.0.0.1:8000 --client shared --port 8090
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import httpx
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

ClientMode = Literal["per-request", "shared"]


class Observation(BaseModel):
    state: list[float]


class ActBody(BaseModel):
    robot_id: str
    episode_id: str
    observation: Observation
    task_onehot: list[float] | None = None


def _v2_request(body: ActBody) -> dict[str, Any]:
    state = body.observation.state
    inputs: list[dict[str, Any]] = [
        {"name": "observation", "shape": [1, len(state)], "datatype": "FP32", "data": state}
    ]
    if body.task_onehot is not None:
        onehot = body.task_onehot
        inputs.append(
            {"name": "task_onehot", "shape": [1, len(onehot)], "datatype": "FP32", "data": onehot}
        )
    return {"inputs": inputs, "outputs": [{"name": "action"}]}


def create_app(
    triton_url: str,
    mode: ClientMode = "shared",
    timeout_s: float = 5.0,
    transport: httpx.AsyncBaseTransport | None = None,  # tests inject a mock upstream
) -> FastAPI:
    base = triton_url.rstrip("/")
    state: dict[str, httpx.AsyncClient] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if mode == "shared":
            state["client"] = httpx.AsyncClient(timeout=timeout_s, transport=transport)
        yield
        if "client" in state:
            await state.pop("client").aclose()

    app = FastAPI(title="baseline proxy", lifespan=lifespan)

    async def forward(url: str, payload: dict[str, Any]) -> httpx.Response:
        if mode == "shared":
            return await state["client"].post(url, json=payload)
        async with httpx.AsyncClient(timeout=timeout_s, transport=transport) as client:
            return await client.post(url, json=payload)

    @app.post("/v1/act/{ensemble}")
    async def act(ensemble: str, body: ActBody) -> dict[str, Any]:
        try:
            resp = await forward(f"{base}/v2/models/{ensemble}/infer", _v2_request(body))
        except httpx.HTTPError as err:
            raise HTTPException(status_code=502, detail=f"triton unreachable: {err}") from None
        if resp.status_code != 200:
            raise HTTPException(status_code=502, detail=resp.text)
        outputs = resp.json().get("outputs", [])
        action = next((o["data"] for o in outputs if o.get("name") == "action"), None)
        if action is None:
            raise HTTPException(status_code=502, detail="no action in triton response")
        return {"action": action, "route": ensemble}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def app_from_env() -> FastAPI:
    """`uvicorn --factory loadtest.baseline_proxy:app_from_env` reads its settings from env."""
    mode = os.environ.get("BASELINE_CLIENT_MODE", "shared")
    if mode not in ("per-request", "shared"):
        raise ValueError(f"BASELINE_CLIENT_MODE must be per-request or shared, got {mode!r}")
    url = os.environ.get("BASELINE_TRITON_URL", "http://127.0.0.1:8000")
    return create_app(url, "shared" if mode == "shared" else "per-request")


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m loadtest.baseline_proxy", description=__doc__)
    parser.add_argument("--triton-url", default="http://127.0.0.1:8000")
    parser.add_argument("--client", choices=["per-request", "shared"], default="shared")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    os.environ["BASELINE_TRITON_URL"] = args.triton_url
    os.environ["BASELINE_CLIENT_MODE"] = args.client
    uvicorn.run(
        "loadtest.baseline_proxy:app_from_env",
        factory=True,
        host="127.0.0.1",
        port=args.port,
        workers=args.workers,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
