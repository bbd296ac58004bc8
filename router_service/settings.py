"""Process settings (environment variables prefixed `ROUTER_`), separate from the deployment
contract: settings say where things are and how this process behaves; the contract says what to
serve and how to route, and is shared by every replica through the store."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class RouterSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ROUTER_", frozen=True)

    contract_path: Path = Path("deploy/contracts/ci.yaml")
    # How the router calls Triton: KServe v2 HTTP with binary tensors (default: the cheapest per
    # call here), unary gRPC, or gRPC on one ModelStreamInfer stream ("grpc-stream"). HTTP and
    # gRPC each have their own address.
    triton_protocol: Literal["http", "grpc", "grpc-stream"] = "http"
    triton_http_url: str = "127.0.0.1:8000"
    triton_grpc_url: str = "127.0.0.1:8001"
    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    replica_id: str = "router-0"

    host: str = "127.0.0.1"  # localhost unless an operator says otherwise
    # Router processes on the same ports (uvicorn workers for HTTP, SO_REUSEPORT for gRPC),
    # sharing contract, leases and decision log through Redis (required when > 1).
    workers: int = Field(default=1, ge=1, le=64)
    http_port: int = 8080
    grpc_port: int | None = 50051

    # Robot keys, a comma-separated list or a JSON object binding keys to robots (keys.py);
    # or the same text in a file. Parsed by `keys.parse_keys`, whose errors never echo a key.
    api_keys: SecretStr | None = None
    api_keys_file: Path | None = None
    admin_key: SecretStr | None = None
    auth_disabled: bool = False

    max_body_bytes: int = 64 * 1024
    # SIGTERM: seconds of not-ready-but-serving before the graceful stop (router_service/drain.py)
    drain_s: float = Field(default=2.0, ge=0.0, le=60.0)
    max_inflight: int = 64
    max_queue_age_ms: float = 10.0  # shed while the event loop runs this late (queue age)
    # Below max_inflight, the limit adapts to what is answered in time (concurrency.py); off:
    # only max_inflight and the queue age shed, and overload shows up as timeouts and hold.
    adaptive_limit: bool = True
    # `deadline_met` also keeps back the event loop's current lag (deadlines.py: Budget.met)
    met_counts_loop_lag: bool = True
    readiness_cache_s: float = 1.0
    health_poll_s: float = 2.0

    # LeRobot async inference (router_service/lerobot/, docs/clients/lerobot.md). Its client
    # sends no credentials: whoever reaches this port acts as `lerobot_robot_id` with the robot
    # key whose key_id is `lerobot_key_id`. Off, and on localhost only, unless told otherwise.
    lerobot_enabled: bool = False
    lerobot_host: str = "127.0.0.1"
    lerobot_port: int = Field(default=8090, ge=1, le=65535)
    lerobot_key_id: str | None = None
    lerobot_robot_id: str = Field(default="lerobot-1", pattern=r"^[A-Za-z0-9_.:\-]{1,128}$")
    lerobot_max_message_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)  # one observation
    lerobot_poll_s: float = Field(default=2.0, gt=0.0, le=30.0)  # GetActions' longest wait
    lerobot_similar_atol: float = Field(default=1.0, ge=0.0)  # LeRobot's similarity filter

    @model_validator(mode="after")
    def _workers_share_a_store(self) -> RouterSettings:
        if self.workers > 1 and not self.redis_url:
            raise ValueError("ROUTER_WORKERS > 1 needs REDIS_URL: workers share contract, "
                             "episode leases and the decision log through Redis")
        return self
