"""Request bodies. Parsed with pydantic's JSON parser straight from bytes (no json.loads pass);
the first validation error becomes the response's `field`."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import ClientDisconnect, Request

from router_service.errors import ClientGone, InvalidRequest, PayloadTooLarge

IdStr = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Observation(Body):
    state: list[float] = Field(description="The panel's state vector (Meta-World: 39 floats)")


class ActBody(Body):
    robot_id: str = IdStr
    episode_id: str = IdStr
    task: str | None = Field(default=None, description="Omit to let the router infer it")
    deadline_ms: float | None = Field(default=None, description="Budget in ms from receipt")
    deadline_unix_ms: float | None = Field(
        default=None, description="Absolute deadline, Unix time in ms, for robots whose clock "
        "is synchronised with the router's; the earlier of this and deadline_ms holds. Over "
        "HTTP the header X-Deadline-Unix-Ms says the same.")
    observation: Observation


class StreamActBody(ActBody):
    """One message of an `/v1/act/stream` session: an act body and the robot's sequence
    number, echoed in the reply (replies of one session come back in order)."""

    sequence: int | None = Field(default=None, ge=0)


class FeedbackBody(Body):
    robot_id: str = IdStr
    episode_id: str = IdStr
    decision_id: str | None = None
    success: bool
    true_task: str | None = None


class ReloadBody(Body):
    path: str | None = Field(default=None, description="Contract file; default: configured path")


B = TypeVar("B", bound=Body)


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing an oversized one before reading it when the length is declared."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body is {declared} bytes, limit {limit}", field="body")
    try:
        return await request.body()
    except ClientDisconnect as exc:
        raise ClientGone("client disconnected before its request was read") from exc


def parse_body(model: type[B], raw: bytes, limit: int) -> B:
    if len(raw) > limit:
        raise PayloadTooLarge(f"body is {len(raw)} bytes, limit {limit}", field="body")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        raise InvalidRequest(f"{where}: {err['msg']}", field=where) from exc
