"""Oversized bodies against the real router: a readable 413, whatever the size and however
the client sends it."""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest

from tests.router_fixtures import ROBOT_KEY, RouterFactory, act_body
from tests.router_service.test_http_e2e import STATE

pytestmark = [pytest.mark.slow, pytest.mark.triton]


@pytest.fixture
def router(start_router: RouterFactory, triton_faults: Any) -> Any:
    return start_router()


@pytest.mark.parametrize("path", ["/v1/act", "/v1/feedback"])
@pytest.mark.parametrize("size", [1_000_000, 20_000_000])
def test_any_oversized_body_gets_a_readable_413_not_a_reset(router: Any, path: str,
                                                            size: int) -> None:
    """A plain client writes its whole body before it reads (http.client, as curl and requests
    do; httpx alone tries to read a reply after a failed write): the router must take the body
    (and throw it away) before it answers, or the client gets a reset instead of the reason."""
    body = b'{"x": "' + b"a" * size + b'"}'
    conn = http.client.HTTPConnection("127.0.0.1", router.http_port, timeout=30)
    try:
        for chunked in (False, True):
            headers = {"Authorization": f"Bearer {ROBOT_KEY}", "Content-Type": "application/json"}
            if chunked:
                conn.request("POST", path, body=iter([body[i:i + 65536] for i in
                                                      range(0, len(body), 65536)]),
                             headers=headers, encode_chunked=True)
            else:
                conn.request("POST", path, body=body, headers=headers)
            reply = conn.getresponse()
            payload = json.loads(reply.read())
            assert reply.status == 413, payload
            assert payload["error"]["field"] == "body"
        conn.request("POST", "/v1/act", body=json.dumps(act_body(STATE)),
                     headers={"Authorization": f"Bearer {ROBOT_KEY}"})
        assert conn.getresponse().status == 200  # the same connection still serves
    finally:
        conn.close()
