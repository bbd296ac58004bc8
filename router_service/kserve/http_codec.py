"""KServe v2 HTTP inference bodies, with the binary tensor extension.

A request is a JSON inference header, optionally followed by raw tensor bytes: the
`Inference-Header-Content-Length` header says where the JSON ends, and each input carrying
`parameters.binary_data_size` takes that many bytes, in input order. An input without it
carries JSON `data`. The answer is JSON unless binary is asked for: request parameter
`binary_data_output: true` (what tritonclient sends when no outputs are named), or an output's
`parameters.binary_data` (which wins for that output).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson

from router_service.engine import ActReply
from router_service.errors import InvalidRequest
from router_service.kserve.models import MODEL_VERSION, OUTPUT
from router_service.kserve.params import BINARY_OUTPUT
from router_service.kserve.service import reply_parameters
from router_service.kserve.tensors import (
    FP32,
    Observation,
    action_tensor,
    check_input,
    check_outputs,
    from_raw,
    from_values,
)

HEADER_LENGTH = "inference-header-content-length"


@dataclass(frozen=True, slots=True)
class HttpInfer:
    observation: Observation
    parameters: dict[str, Any]
    binary_output: bool
    request_id: str | None


def _bad(field: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"{field}: {message}", field=field)


def _object(value: object, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad(field, f"must be a JSON object, got {type(value).__name__}")
    return value


def split_body(raw: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """(JSON header, binary tensor data)."""
    if header_length is None:
        return raw, b""
    if not (header_length.isascii() and header_length.isdigit()) or int(header_length) > len(
            raw):
        raise _bad(HEADER_LENGTH, f"{header_length[:20]!r} is not a length within the "
                   f"{len(raw)}-byte body")
    n = int(header_length)
    return raw[:n], raw[n:]


def _observation(inputs: object, binary: bytes, state_dim: int) -> Observation:
    if not isinstance(inputs, list) or not inputs:
        raise _bad("inputs", "missing input 'observation' (a list of one tensor)")
    observation: Observation | None = None
    offset = 0
    for i, tensor in enumerate(inputs):
        tensor = _object(tensor, f"inputs[{i}]")
        batched = check_input(i, tensor.get("name"), tensor.get("datatype"), tensor.get("shape"),
                              state_dim)
        if i > 0:  # a second input that is `observation` again
            raise _bad(f"inputs[{i}].name", "'observation' is given twice")
        size = _object(tensor.get("parameters"), f"inputs[{i}].parameters").get(
            "binary_data_size")
        field = f"inputs[{i}].parameters.binary_data_size"
        if size is not None:
            if type(size) is not int or size < 0:
                raise _bad(field, f"must be a non-negative integer, got {size!r}")
            if offset + size > len(binary):
                raise _bad(field, f"{size} bytes declared, {len(binary) - offset} follow the "
                           f"JSON header ({HEADER_LENGTH})")
            observation = from_raw(binary[offset:offset + size], state_dim, batched, field)
            offset += size
        elif "data" in tensor:
            observation = from_values(tensor["data"], state_dim, batched, "observation.data")
        else:
            raise _bad("observation.data", "missing: JSON `data`, or `binary_data_size` with "
                       "the bytes after the JSON header")
    if offset != len(binary):
        raise _bad(HEADER_LENGTH, f"{len(binary) - offset} bytes after the JSON header belong "
                   "to no input's binary_data_size")
    assert observation is not None  # one input, decoded above
    return observation


def _lenient(head: bytes, exc: orjson.JSONDecodeError) -> Any:
    """Python's `json` (and so tritonclient) writes NaN and Infinity, which strict JSON has
    not: read them, so the refusal names the element that is not finite, not the body."""
    try:
        return json.loads(head)
    except (ValueError, RecursionError):
        raise _bad("body", f"not a JSON inference request: {exc}") from None


def decode_request(raw: bytes, header_length: str | None, state_dim: int) -> HttpInfer:
    head, binary = split_body(raw, header_length)
    try:
        doc = orjson.loads(head)
    except orjson.JSONDecodeError as exc:
        doc = _lenient(head, exc)
    if not isinstance(doc, dict):
        raise _bad("body", f"must be a JSON object, got {type(doc).__name__}")
    parameters = _object(doc.get("parameters"), "parameters")
    observation = _observation(doc.get("inputs"), binary, state_dim)
    binary_output = parameters.get(BINARY_OUTPUT) is True
    outputs = doc.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, list):
            raise _bad("outputs", f"must be a list, got {type(outputs).__name__}")
        specs = [_object(o, f"outputs[{i}]") for i, o in enumerate(outputs)]
        check_outputs([o.get("name") for o in specs])
        for i, spec in enumerate(specs):
            choice = _object(spec.get("parameters"), f"outputs[{i}].parameters").get(
                "binary_data")
            if choice is not None:
                binary_output = choice is True
    request_id = doc.get("id")
    return HttpInfer(observation, parameters, binary_output,
                     request_id if isinstance(request_id, str) else None)


def encode_response(model: str, request: HttpInfer, reply: ActReply
                    ) -> tuple[bytes, dict[str, str]]:
    """(body, extra headers); binary: the JSON header, then the action's raw FP32 bytes."""
    values, shape = action_tensor(reply.action, request.observation.batched)
    output: dict[str, Any] = {"name": OUTPUT, "datatype": FP32, "shape": shape}
    if request.binary_output:
        output["parameters"] = {"binary_data_size": values.nbytes}
    else:
        output["data"] = values.tolist()
    doc: dict[str, Any] = {"model_name": model, "model_version": MODEL_VERSION,
                           "parameters": reply_parameters(reply), "outputs": [output]}
    if request.request_id:
        doc["id"] = request.request_id
    header = orjson.dumps(doc)
    if not request.binary_output:
        return header, {}
    return header + values.tobytes(), {"Inference-Header-Content-Length": str(len(header))}
