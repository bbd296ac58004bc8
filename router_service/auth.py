"""API-key checks shared by HTTP and gRPC: robot keys for act/feedback, the admin key for
control endpoints. Off only when `ROUTER_AUTH_DISABLED=true` says so."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from router_service.errors import Forbidden, Unauthorized
from router_service.settings import RouterSettings


def bearer_token(authorization: str | None) -> bytes | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token.encode() if scheme.lower() == "bearer" and token else None


def _matches(token: bytes | None, keys: tuple[bytes, ...]) -> bool:
    # Constant-time comparison against every key: no timing hint about which prefix matched.
    return token is not None and any(hmac.compare_digest(token, key) for key in keys)


@dataclass(frozen=True)
class ApiKeys:
    """The keys, encoded once at start-up (checked on every request)."""

    robot: tuple[bytes, ...]
    admin: tuple[bytes, ...]
    disabled: bool

    @classmethod
    def from_settings(cls, settings: RouterSettings) -> ApiKeys:
        admin = (settings.admin_key.get_secret_value().encode(),) if settings.admin_key else ()
        robot = tuple(k.get_secret_value().encode() for k in settings.api_keys)
        return cls(robot=robot, admin=admin, disabled=settings.auth_disabled)

    def check_robot(self, authorization: str | None) -> None:
        """Robot endpoints accept a robot key or the admin key."""
        if self.disabled or _matches(bearer_token(authorization), self.robot + self.admin):
            return
        raise Unauthorized("missing or invalid API key (Authorization: Bearer <key>)",
                           field="authorization")

    def check_robot_bytes(self, authorization: bytes | None) -> None:
        """`check_robot` for a raw ASGI header value."""
        self.check_robot(authorization.decode("latin-1") if authorization is not None else None)

    def check_admin(self, authorization: str | None) -> None:
        token = bearer_token(authorization)
        if self.disabled or _matches(token, self.admin):
            return
        if _matches(token, self.robot):
            raise Forbidden("this endpoint needs the admin key", field="authorization")
        raise Unauthorized("missing or invalid admin key (Authorization: Bearer <key>)",
                           field="authorization")
