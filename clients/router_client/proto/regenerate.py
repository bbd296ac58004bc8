"""Regenerate router_pb2.py / router_pb2.pyi / router_pb2_grpc.py from router.proto.

    .venv/bin/python clients/router_client/proto/regenerate.py

Needs grpcio-tools (a development tool, not a runtime dependency of the client). Two edits
are made to protoc's output, both mechanical:
- the gRPC module imports its sibling relatively, so it works inside this package;
- the stub and the gRPC module get `# mypy: ignore-errors`: protoc's .pyi subclasses an
  untyped `Message` and uses bare generics, and the gRPC module has no annotations, so
  `mypy --strict` would report protoc's style instead of ours. The types in the .pyi are
  still used by everything that imports it.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO = "router.proto"
MYPY_HEADER = "# mypy: ignore-errors\n"


def compile_proto(here: Path, proto: str) -> int:
    """protoc on `here/proto` into `here`, with the two edits above; 0 on success. Also used
    for LeRobot's proto (router_service/lerobot/proto/regenerate.py)."""
    from grpc_tools import protoc  # imported here: only this development script needs it

    args = ["protoc", f"-I{here}", f"--python_out={here}", f"--pyi_out={here}",
            f"--grpc_python_out={here}", str(here / proto)]
    if protoc.main(args) != 0:
        return 1
    stem = Path(proto).stem
    grpc_module = here / f"{stem}_pb2_grpc.py"
    alias = f"{stem}__pb2"
    grpc_module.write_text(grpc_module.read_text().replace(
        f"\nimport {stem}_pb2 as {alias}\n", f"\nfrom . import {stem}_pb2 as {alias}\n"
    ))
    for path in (here / f"{stem}_pb2.pyi", grpc_module):
        text = path.read_text()
        if not text.startswith(MYPY_HEADER):
            path.write_text(MYPY_HEADER + text)
    return 0


def main() -> int:
    return compile_proto(HERE, PROTO)


if __name__ == "__main__":
    sys.exit(main())
