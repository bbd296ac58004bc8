"""`python -m router_service`: HTTP (uvicorn) and gRPC in one process and one event loop, or in
`ROUTER_WORKERS` processes sharing the same ports (and, through Redis, the same contract,
leases and decision log; metrics are summed over the workers' shared files)."""

from __future__ import annotations

import logging
import os
import tempfile

import uvicorn

from router_service.auth import ApiKeys
from router_service.keys import KeyConfigError
from router_service.settings import RouterSettings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = RouterSettings()
    try:  # once here, for one clear line instead of a traceback from every worker
        ApiKeys.from_settings(settings)
    except KeyConfigError as exc:
        raise SystemExit(f"router_service: {exc}") from None
    if settings.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Set before any worker imports prometheus_client: each then writes its values to this
        # folder, and /metrics on any worker reports all of them.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="router-metrics-")
    uvicorn.run(
        "router_service.http_api.app:serve_app",
        factory=True,
        host=settings.host,
        port=settings.http_port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_max_size=settings.max_body_bytes,
        access_log=False,  # per-request logging is hot-path cost; the decision log has it all
        log_level="warning",
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
