"""Robot key configuration: which robots each key may act for, and how fast.

`ROUTER_API_KEYS` (or the file `ROUTER_API_KEYS_FILE`) takes one of two forms:

- a comma-separated list of keys (`key1,key2`): each covers every robot, with no rate limit:
  the development default, and what deployments set before keys were bound to robots;
- a JSON object `{"<key>": {"robots": ["arm-1", "cell-a-*"], "rate_per_s": 200, "burst": 400}}`:
  `robots` lists exact robot ids or prefixes ending in `*` (`"*"` alone: every robot);
  `rate_per_s` (optional, > 0) and `burst` (optional, >= 1, default one second's worth) set the
  key's token bucket.

Only a digest of each key is kept (sha256) with a short `key_id` (its first 8 hex digits), the
name logs, metrics and the decision log use. Errors name the key by `key_id`, never by value.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ENV = "ROUTER_API_KEYS"
ROBOT_PATTERN = re.compile(r"^(\*|[A-Za-z0-9_.:\-]{1,128}\*?)$")
_KEY_CHARS = re.compile(r"^[\x21-\x7e]+$")  # what survives `Authorization: Bearer <key>`


class KeyConfigError(ValueError):
    """The key configuration is invalid; the message names the setting and field."""


def digest(raw: bytes) -> bytes:
    return hashlib.sha256(raw).digest()


def key_id_of(key_digest: bytes) -> str:
    return key_digest.hex()[:8]


@dataclass(frozen=True, slots=True)
class RobotKey:
    """One configured key, as requests see it once authenticated."""

    key_id: str
    digest: bytes = field(repr=False)
    exact: frozenset[str]
    prefixes: tuple[str, ...]
    all_robots: bool
    rate_per_s: float | None  # None: no rate limit
    burst: float

    def covers(self, robot_id: str) -> bool:
        # A set lookup and one C-level startswith over the (few) prefixes.
        return self.all_robots or robot_id in self.exact or robot_id.startswith(self.prefixes)


def open_key(key_id: str, key_digest: bytes = b"") -> RobotKey:
    """A key that covers every robot, unlimited: plain-list keys, the admin key, and the
    stand-in identity when auth is disabled."""
    return RobotKey(key_id, key_digest, frozenset(), (), True, None, 0.0)


class KeyBinding(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    robots: Annotated[list[Annotated[str, Field(pattern=ROBOT_PATTERN.pattern)]],
                      Field(min_length=1)]
    rate_per_s: float | None = Field(default=None, gt=0)
    burst: float | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _burst_needs_rate(self) -> KeyBinding:
        if self.burst is not None and self.rate_per_s is None:
            raise ValueError("burst needs rate_per_s")
        return self


def _bound_key(raw: str, binding: KeyBinding) -> RobotKey:
    key_digest = digest(raw.encode())
    robots = binding.robots
    prefixes = tuple(r[:-1] for r in robots if r.endswith("*") and r != "*")
    rate = binding.rate_per_s
    burst = binding.burst if binding.burst is not None else max(1.0, rate or 0.0)
    return RobotKey(
        key_id=key_id_of(key_digest), digest=key_digest,
        exact=frozenset(r for r in robots if not r.endswith("*")), prefixes=prefixes,
        all_robots="*" in robots, rate_per_s=rate, burst=burst,
    )


def _check_raw_key(raw: object, where: str) -> str:
    if not isinstance(raw, str) or not _KEY_CHARS.match(raw):
        raise KeyConfigError(f"{where}: a key must be printable ASCII without spaces")
    return raw


class _Object(list[tuple[str, Any]]):
    """A JSON object as its (name, value) pairs: a key listed twice must be an error, not
    silently the last one (the stdlib parser, with this hook; orjson has no such hook)."""


def _from_json(text: str, source: str) -> list[RobotKey]:
    try:
        data = json.loads(text, object_pairs_hook=_Object)
    except json.JSONDecodeError as exc:  # the message has a position, never the text
        raise KeyConfigError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno} "
                             f"column {exc.colno})") from None
    if not isinstance(data, _Object):
        raise KeyConfigError(f"{source}: expected an object of key -> binding")
    keys: dict[str, RobotKey] = {}
    for raw, value in data:
        where = f"{source}[key {key_id_of(digest(str(raw).encode()))}]"
        _check_raw_key(raw, where)
        if raw in keys:
            raise KeyConfigError(f"{where}: listed twice")
        try:
            binding = KeyBinding.model_validate(dict(value) if isinstance(value, _Object)
                                                else value)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            raise KeyConfigError(f"{where}{'.' + field if field else ''}: {err['msg']}"
                                 ) from None
        keys[raw] = _bound_key(raw, binding)
    return list(keys.values())


def parse_keys(text: str, source: str = ENV) -> list[RobotKey]:
    """The keys a setting's text configures (see the module docstring for the forms)."""
    text = text.strip()
    if text.startswith(("{", "[")):  # an array is a mistake to name, not two odd keys
        return _from_json(text, source)
    keys = []
    for i, raw in enumerate(k.strip() for k in text.split(",")):
        if raw:
            key_digest = digest(_check_raw_key(raw, f"{source}[{i}]").encode())
            keys.append(open_key(key_id_of(key_digest), key_digest))
    return keys


def describe(keys: list[RobotKey]) -> list[dict[str, object]]:
    """What an operator may see of the configuration (start-up log): no key material."""
    return [{"key_id": k.key_id, "robots": "*" if k.all_robots else
             sorted(k.exact) + [p + "*" for p in k.prefixes],
             "rate_per_s": k.rate_per_s, "burst": k.burst if k.rate_per_s else None}
            for k in keys]

