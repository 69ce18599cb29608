"""Blocking network connections while a test runs: what a test cannot reach, it cannot pay for.

A :class:`NetworkGuard` replaces ``socket.socket.connect`` and ``connect_ex`` for as long as it
is entered. A connection to a host that is not allowed raises :class:`NetworkBlocked` before
anything is sent, and is remembered, so the test can fail with the reason even when the code
under test swallows the error. ``socket.getaddrinfo`` is watched (not blocked) to name the host
an address was resolved from.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

__all__ = ["NetworkBlocked", "NetworkGuard"]

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class NetworkBlocked(RuntimeError):
    """A test tried to open a connection it may not open.

    Not an ``OSError``: HTTP clients treat those as a network failure to retry.
    """


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%", maxsplit=1)[0]).is_loopback
    except ValueError:
        return False


class NetworkGuard:
    """Refuses connections except to loopback (when ``loopback``) and the ``allowed`` hosts.

    ``message(host, port)`` writes the error for a blocked connection; ``blocked`` lists the
    ``host:port`` of each attempt refused.
    """

    def __init__(
        self,
        allowed: Iterable[str],
        *,
        loopback: bool,
        message: Callable[[str, str], str],
    ) -> None:
        self.allowed = {host.strip().lower() for host in allowed if host.strip()}
        self.loopback = loopback
        self.message = message
        self.blocked: list[str] = []
        self._names: dict[str, str] = {}  # address -> the name it was resolved from
        self._resolved: set[str] | None = None
        self._saved: dict[str, Any] = {}

    def _allowed_addresses(self) -> set[str]:
        if self._resolved is None:
            found = set(self.allowed)
            for host in self.allowed:
                try:
                    infos = self._saved["getaddrinfo"](host, None)
                except (OSError, UnicodeError):
                    continue
                found.update(str(info[4][0]) for info in infos)
            self._resolved = found
        return self._resolved

    def permits(self, host: str) -> bool:
        names = {host.lower(), self._names.get(host, host).lower()}
        if self.loopback and any(_is_loopback(name) for name in names):
            return True
        return bool(names & self._allowed_addresses())

    def _check(self, address: Any) -> None:
        if not isinstance(address, tuple) or len(address) < 2:  # a Unix socket, not the network
            return
        host, port = str(address[0]), str(address[1])
        if self.permits(host):
            return
        name = self._names.get(host)
        shown = f"{host}:{port}" + (f" ({name})" if name and name != host else "")
        self.blocked.append(shown)
        raise NetworkBlocked(self.message(name or host, shown))

    def __enter__(self) -> NetworkGuard:
        guard = self
        connect, connect_ex = socket.socket.connect, socket.socket.connect_ex
        getaddrinfo = socket.getaddrinfo
        self._saved = {
            "connect": socket.socket.__dict__.get("connect"),
            "connect_ex": socket.socket.__dict__.get("connect_ex"),
            "getaddrinfo": getaddrinfo,
        }

        def guarded_connect(sock: socket.socket, address: Any) -> None:
            guard._check(address)
            connect(sock, address)

        def guarded_connect_ex(sock: socket.socket, address: Any) -> int:
            guard._check(address)
            return connect_ex(sock, address)

        def watched_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            infos = getaddrinfo(host, *args, **kwargs)
            if isinstance(host, str | bytes):
                name = host.decode() if isinstance(host, bytes) else host
                for info in infos:
                    guard._names.setdefault(str(info[4][0]), name)
            return infos

        socket.socket.connect = guarded_connect  # type: ignore[method-assign,assignment]
        socket.socket.connect_ex = guarded_connect_ex  # type: ignore[method-assign,assignment]
        socket.getaddrinfo = watched_getaddrinfo
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for name in ("connect", "connect_ex"):
            original = self._saved.get(name)
            if original is None:
                delattr(socket.socket, name)  # inherited again from the C socket
            else:
                setattr(socket.socket, name, original)
        socket.getaddrinfo = self._saved["getaddrinfo"]
