"""HTTP transports: one attempt of one call each, over httpx. Building and parsing live in
`_codec`, so the sync and async classes below differ only by `await`."""

from __future__ import annotations

from typing import Any

import httpx

from . import _codec
from ._retry import Attempt
from .config import Timeouts
from .errors import ConnectError, DeadlineExceeded, RouterError, ServerError, TransportError
from .messages import ActRequest, ActResponse, Feedback

ACT_PATH = "/v1/act"
FEEDBACK_PATH = "/v1/feedback"


def error_from_httpx(exc: httpx.HTTPError) -> RouterError:
    """Classify an httpx failure by whether the request can have reached the router."""
    message = f"{exc or 'no detail'} (httpx.{type(exc).__name__})"
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return ConnectError(message, request_sent=False)
    if isinstance(exc, httpx.PoolTimeout):
        # Waited for a free connection until the budget ran out: never sent, but late.
        return DeadlineExceeded(message, request_sent=False)
    if isinstance(exc, httpx.TimeoutException):
        return DeadlineExceeded(message, request_sent=True)
    if isinstance(exc, httpx.DecodingError):
        return ServerError(message)
    if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError):
        # The connection broke after (part of) the request went out.
        return ConnectError(message, request_sent=True)
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
        return TransportError(message, request_sent=False)
    return TransportError(message, request_sent=True)


class _HttpCalls:
    """Everything about an HTTP call except sending it."""

    def __init__(self, api_key: str | None, timeouts: Timeouts) -> None:
        self.timeouts = timeouts
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def timeout(self, wait_s: float) -> httpx.Timeout:
        # httpx has no total timeout, only per phase; the read phase dominates a small
        # JSON exchange, and connect is capped so a dead host fails early enough to retry.
        return httpx.Timeout(wait_s, connect=min(self.timeouts.connect_s, wait_s))

    def act(self, request: ActRequest, attempt: Attempt) -> tuple[dict[str, Any], httpx.Timeout]:
        wait_s = _codec.reply_wait_s(attempt, self.timeouts.deadline_slack_ms,
                                     deadline_sent=attempt.deadline_explicit)
        return _codec.act_json(request, attempt), self.timeout(wait_s)

    def feedback(self, feedback: Feedback,
                 attempt: Attempt) -> tuple[dict[str, Any], httpx.Timeout]:
        return _codec.feedback_json(feedback), self.timeout(attempt.budget_s)

    @staticmethod
    def check(response: httpx.Response) -> httpx.Response:
        if not response.is_success:
            raise _codec.http_error(response.status_code, response.content, response.headers)
        return response

    @staticmethod
    def parse_act(response: httpx.Response) -> ActResponse:
        return _codec.parse_act_json(_codec.decode_json(response.content))


class HttpTransport:
    def __init__(self, url: str, api_key: str | None, timeouts: Timeouts,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._calls = _HttpCalls(api_key, timeouts)
        self._client = httpx.Client(base_url=url, headers=self._calls.headers, transport=transport)

    def act(self, request: ActRequest, attempt: Attempt) -> ActResponse:
        body, timeout = self._calls.act(request, attempt)
        return self._calls.parse_act(self._post(ACT_PATH, body, timeout))

    def feedback(self, feedback: Feedback, attempt: Attempt) -> None:
        body, timeout = self._calls.feedback(feedback, attempt)
        self._post(FEEDBACK_PATH, body, timeout)

    def _post(self, path: str, body: dict[str, Any], timeout: httpx.Timeout) -> httpx.Response:
        try:
            response = self._client.post(path, json=body, timeout=timeout)
        except httpx.HTTPError as exc:
            raise error_from_httpx(exc) from exc
        return self._calls.check(response)

    def close(self) -> None:
        self._client.close()


class AsyncHttpTransport:
    def __init__(self, url: str, api_key: str | None, timeouts: Timeouts,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._calls = _HttpCalls(api_key, timeouts)
        self._client = httpx.AsyncClient(
            base_url=url, headers=self._calls.headers, transport=transport
        )

    async def act(self, request: ActRequest, attempt: Attempt) -> ActResponse:
        body, timeout = self._calls.act(request, attempt)
        return self._calls.parse_act(await self._post(ACT_PATH, body, timeout))

    async def feedback(self, feedback: Feedback, attempt: Attempt) -> None:
        body, timeout = self._calls.feedback(feedback, attempt)
        await self._post(FEEDBACK_PATH, body, timeout)

    async def _post(self, path: str, body: dict[str, Any],
                    timeout: httpx.Timeout) -> httpx.Response:
        try:
            response = await self._client.post(path, json=body, timeout=timeout)
        except httpx.HTTPError as exc:
            raise error_from_httpx(exc) from exc
        return self._calls.check(response)

    async def aclose(self) -> None:
        await self._client.aclose()
