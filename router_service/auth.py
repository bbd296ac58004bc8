"""Who a request is, for every transport: the bearer token becomes a `RobotKey` (robot keys and
the admin key; 401 otherwise), and admin endpoints need the admin key. Off only when
`ROUTER_AUTH_DISABLED=true` says so. What a key may do (which robots, how fast) is decided in
the engine's admission path (`ActEngine.authorize`), the same for every transport.

Only digests of the keys are held. Comparing digests, not keys, is what keeps the comparison
from leaking: how long a lookup takes says something about a sha256 digest, nothing usable
about the key. Known tokens are cached by their raw header value (bounded), so a request costs
one dict lookup, not a hash of its key.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from router_service.errors import Forbidden, Unauthorized
from router_service.keys import (
    ENV,
    KeyConfigError,
    RobotKey,
    digest,
    key_id_of,
    open_key,
    parse_keys,
)
from router_service.settings import RouterSettings

MAX_CACHED_TOKENS = 4096  # distinct valid header values; past it the cache starts over
ANONYMOUS = open_key("anonymous")  # the caller when auth is disabled


# `Bearer` is the router's own; `Api-Key` is what openpi's WebsocketClientPolicy sends.
TOKEN_SCHEMES = (b"bearer", b"api-key")


def bearer_token(authorization: bytes | str | None) -> bytes | None:
    if not authorization:
        return None
    raw = authorization.encode("latin-1") if isinstance(authorization, str) else authorization
    scheme, _, token = raw.partition(b" ")
    token = token.strip()
    return token if scheme.lower() in TOKEN_SCHEMES and token else None


def _configured_keys(settings: RouterSettings) -> list[RobotKey]:
    if settings.api_keys is not None and settings.api_keys_file is not None:
        raise KeyConfigError(f"{ENV} and {ENV}_FILE are both set: set one")
    if settings.api_keys_file is None:
        text = settings.api_keys.get_secret_value() if settings.api_keys else ""
        return parse_keys(text, ENV)
    try:
        text = settings.api_keys_file.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyConfigError(f"{ENV}_FILE: cannot read {settings.api_keys_file}: {exc}"
                             ) from None
    return parse_keys(text, f"{ENV}_FILE")


class ApiKeys:
    def __init__(self, robot: Iterable[RobotKey], admin: RobotKey | None,
                 disabled: bool) -> None:
        self._robot = {k.digest: k for k in robot}
        self._admin = admin
        self.disabled = disabled
        self._cache: dict[bytes | str, RobotKey] = {}

    @classmethod
    def from_settings(cls, settings: RouterSettings) -> ApiKeys:
        """Raises `KeyConfigError` naming the setting and field when the configuration is bad."""
        robot = _configured_keys(settings)
        admin = None
        if settings.admin_key is not None:
            admin_digest = digest(settings.admin_key.get_secret_value().encode())
            if any(k.digest == admin_digest for k in robot):
                raise KeyConfigError(f"ROUTER_ADMIN_KEY: is also a robot key in {ENV}; the "
                                     "admin key must be a key of its own")
            admin = open_key(key_id_of(admin_digest), admin_digest)
        return cls(robot, admin, settings.auth_disabled)

    @property
    def robot_keys(self) -> list[RobotKey]:
        return list(self._robot.values())

    def _find(self, token: bytes | None) -> RobotKey | None:
        if token is None:
            return None
        token_digest = digest(token)
        key = self._robot.get(token_digest)
        if key is not None:
            return key
        admin = self._admin
        if admin is not None and hmac.compare_digest(admin.digest, token_digest):
            return admin
        return None

    def robot(self, authorization: bytes | str | None) -> RobotKey:
        """The caller of a robot endpoint: a robot key, or the admin key (covers every robot)."""
        if authorization is not None:
            known = self._cache.get(authorization)
            if known is not None:
                return known
        if self.disabled:
            return ANONYMOUS
        key = self._find(bearer_token(authorization))
        if key is None:  # not cached: unknown tokens must not push known ones out
            raise Unauthorized("missing or invalid API key (Authorization: Bearer <key>)",
                               field="authorization")
        assert authorization is not None  # a key was found in it
        if len(self._cache) >= MAX_CACHED_TOKENS:
            self._cache.clear()
        self._cache[authorization] = key
        return key

    def check_admin(self, authorization: bytes | str | None) -> None:
        if self.disabled:
            return
        key = self._find(bearer_token(authorization))
        if key is not None and key is self._admin:
            return
        if key is not None:
            raise Forbidden("this endpoint needs the admin key", field="authorization")
        raise Unauthorized("missing or invalid admin key (Authorization: Bearer <key>)",
                           field="authorization")
