"""`python -m router_service`: HTTP (uvicorn) and gRPC in one process and one event loop."""

from __future__ import annotations

import logging

import uvicorn

from router_service.http_api.app import create_app
from router_service.settings import RouterSettings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = RouterSettings()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.http_port,
        loop="uvloop",
        http="httptools" if _has_httptools() else "h11",
        access_log=False,  # per-request logging is hot-path cost; the decision log has it all
        log_level="warning",
        timeout_graceful_shutdown=5,
    )


def _has_httptools() -> bool:
    try:
        import httptools  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
