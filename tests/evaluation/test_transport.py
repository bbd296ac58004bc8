"""What a robot does with a call it gave up at the control deadline: the runner stops waiting,
and the transport decides. HTTP/1.1 must not cancel it (that would close the connection, and
every late tick would cost the next call a new one); gRPC cancels it. Against a real socket
server that answers slowly and counts connections."""

from __future__ import annotations

import asyncio

import orjson

from evaluation.runner import act_by_deadline
from evaluation.transport import HttpTransport, StepReply

REPLY = {"action": [0.0, 0.0, 0.0, 1.0], "route": "generalist", "task": "reach-v3",
         "task_source": "declared", "task_confidence": 1.0, "fallback": None,
         "deadline_met": True, "timing_ms": {"total": 1.0}, "decision_id": "d",
         "reason": "best_score", "policy_version": "v"}


class SlowHttpServer:
    """HTTP/1.1 keep-alive server: the first request is answered after `first_delay_s`."""

    def __init__(self, first_delay_s: float) -> None:
        self.first_delay_s = first_delay_s
        self.connections = 0
        self.requests = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length"))
                await reader.readexactly(length)
                self.requests += 1
                if self.requests == 1:
                    await asyncio.sleep(self.first_delay_s)
                body = orjson.dumps(REPLY)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


async def _late_then_on_time() -> tuple[SlowHttpServer, StepReply, StepReply]:
    server = SlowHttpServer(first_delay_s=0.05)
    async with server as url:
        transport = HttpTransport(url, "key", connections=1)
        late = await act_by_deadline(transport, "r", "e", "reach-v3", [0.0], 20.0)
        await asyncio.sleep(0.06)  # the late reply arrives and is dropped
        on_time = await act_by_deadline(transport, "r", "e", "reach-v3", [0.0], 20.0)
        await transport.aclose()
    return server, late, on_time


def test_http_late_call_is_left_to_finish_on_its_connection() -> None:
    server, late, on_time = asyncio.run(_late_then_on_time())
    assert late.status == "late" and 19.0 <= late.rtt_ms < 45.0  # given up at the deadline
    assert on_time.status == "ok"
    assert server.requests == 2
    assert server.connections == 1  # the late call's connection served the next tick


class HangingTransport:
    def __init__(self) -> None:
        self.abandoned: list[asyncio.Future[StepReply]] = []

    async def act(self, robot_id: str, episode_id: str, task: str | None, state: list[float],
                  deadline_ms: float) -> StepReply:
        await asyncio.sleep(10)
        raise AssertionError("unreachable")

    def abandon(self, call: asyncio.Future[StepReply]) -> None:
        self.abandoned.append(call)
        call.cancel()


def test_the_runner_hands_the_late_call_to_the_transport() -> None:
    async def run() -> tuple[StepReply, HangingTransport]:
        transport = HangingTransport()
        reply = await act_by_deadline(transport, "r", "e", None, [0.0], 10.0)  # type: ignore[arg-type]
        await asyncio.sleep(0)
        return reply, transport

    reply, transport = asyncio.run(run())
    assert reply.status == "late" and reply.code == "client_deadline"
    assert len(transport.abandoned) == 1 and transport.abandoned[0].cancelled()
