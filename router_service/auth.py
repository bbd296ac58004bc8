"""API-key checks shared by HTTP and gRPC: robot keys for act/feedback, the admin key for
control endpoints. Off only when `ROUTER_AUTH_DISABLED=true` says so."""

from __future__ import annotations

import hmac

from router_service.errors import Forbidden, Unauthorized
from router_service.settings import RouterSettings


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def key_matches(token: str | None, keys: list[str]) -> bool:
    # Constant-time comparison against every key: no timing hint about which prefix matched.
    return token is not None and any(
        hmac.compare_digest(token.encode(), key.encode()) for key in keys
    )


def check_robot_key(settings: RouterSettings, authorization: str | None) -> None:
    if settings.auth_disabled:
        return
    token = bearer_token(authorization)
    robot_keys = [k.get_secret_value() for k in settings.api_keys]
    admin = [settings.admin_key.get_secret_value()] if settings.admin_key else []
    if not key_matches(token, robot_keys + admin):
        raise Unauthorized("missing or invalid API key (Authorization: Bearer <key>)",
                           field="authorization")


def check_admin_key(settings: RouterSettings, authorization: str | None) -> None:
    if settings.auth_disabled:
        return
    token = bearer_token(authorization)
    admin = [settings.admin_key.get_secret_value()] if settings.admin_key else []
    if key_matches(token, admin):
        return
    robot_keys = [k.get_secret_value() for k in settings.api_keys]
    if key_matches(token, robot_keys):
        raise Forbidden("this endpoint needs the admin key", field="authorization")
    raise Unauthorized("missing or invalid admin key (Authorization: Bearer <key>)",
                       field="authorization")
