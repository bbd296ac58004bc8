"""Regenerate services_pb2.py / services_pb2.pyi / services_pb2_grpc.py from services.proto.

    .venv/bin/python router_service/lerobot/proto/regenerate.py

`services.proto` is LeRobot 0.6.1's `src/lerobot/transport/services.proto`, byte for byte
(github.com/huggingface/lerobot, tag v0.6.1, commit 7e241bd630a3719a56157a497ce5d08f244784f1;
sha256 a3c2c3aee953851f779f052815e7da2c398b2cbe367a47ec3b80cbad902aaef7): never edit it, replace
it with a newer release's file and regenerate. The wire names (package `transport`, service
`transport.AsyncInference`) are LeRobot's; the file name protoc registers is `services.proto`.

Needs grpcio-tools (a development tool). Two mechanical edits to protoc's output, as for the
router's own proto (clients/router_client/proto/regenerate.py): the gRPC module imports its
sibling relatively, and the stub and gRPC module get `# mypy: ignore-errors`.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from router_client.proto.regenerate import compile_proto

HERE = Path(__file__).resolve().parent
PROTO = "services.proto"
PROTO_SHA256 = "a3c2c3aee953851f779f052815e7da2c398b2cbe367a47ec3b80cbad902aaef7"


def main() -> int:
    digest = hashlib.sha256((HERE / PROTO).read_bytes()).hexdigest()
    if digest != PROTO_SHA256:
        print(f"{PROTO} is not LeRobot 0.6.1's (sha256 {digest}); update PROTO_SHA256 only "
              "with a file taken from a LeRobot release", file=sys.stderr)
        return 1
    return compile_proto(HERE, PROTO)


if __name__ == "__main__":
    sys.exit(main())
