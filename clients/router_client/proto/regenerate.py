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


def main() -> int:
    from grpc_tools import protoc  # imported here: only this development script needs it

    args = ["protoc", f"-I{HERE}", f"--python_out={HERE}", f"--pyi_out={HERE}",
            f"--grpc_python_out={HERE}", str(HERE / PROTO)]
    if protoc.main(args) != 0:
        return 1
    grpc_module = HERE / "router_pb2_grpc.py"
    grpc_module.write_text(grpc_module.read_text().replace(
        "\nimport router_pb2 as router__pb2\n", "\nfrom . import router_pb2 as router__pb2\n"
    ))
    for path in (HERE / "router_pb2.pyi", grpc_module):
        text = path.read_text()
        if not text.startswith(MYPY_HEADER):
            path.write_text(MYPY_HEADER + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
