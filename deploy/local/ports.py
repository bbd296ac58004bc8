"""Ports the local stack needs: free before anything starts, free again after it stops.

A busy port gets one line naming the port, what the stack wanted it for and the process holding
it (from /proc: the listening socket's inode, then the process with that inode open), instead
of a bind error deep inside tritonserver's log after half the stack has started.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path

TCP_LISTEN = "0A"


class PortBusy(RuntimeError):
    pass


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == TCP_LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def holder(port: int) -> str:
    """'pid 1234 (tritonserver)' for the process listening on `port`, or why it is unknown."""
    inodes = _listening_inodes(port)
    if not inodes:
        return "a socket not listed in /proc/net (another network namespace?)"
    wanted = {f"socket:[{i}]" for i in inodes}
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in wanted for fd in fds):
                name = Path(f"/proc/{pid}/comm").read_text().strip()
                return f"pid {pid} ({name})"
        except OSError:
            continue  # exited meanwhile, or not ours to look at
    return "a process this user cannot see"


def in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no conflict
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def check_free(ports: Mapping[str, int]) -> None:
    """Raise PortBusy naming the first busy port ({purpose: port}) and who holds it."""
    for purpose, port in ports.items():
        if in_use(port):
            raise PortBusy(f"port {port} ({purpose}) is in use by {holder(port)}; stop it, "
                           "or give this stack other ports")


def wait_free(ports: Mapping[str, int], timeout_s: float = 30.0) -> list[str]:
    """Wait until every port is free again; returns the ones still busy at the timeout."""
    deadline = time.monotonic() + timeout_s
    busy = list(ports)
    while busy and time.monotonic() < deadline:
        busy = [purpose for purpose, port in ports.items() if in_use(port)]
        if busy:
            time.sleep(0.2)
    return [f"{p} ({ports[p]}, {holder(ports[p])})" for p in busy]
