"""A small TCP proxy for fault tests: forward a loopback port to a target, and cut it on demand.

Its one job: stand between a client and a server so a test can sever the link (``cut()``) and
mend it (``restore()``) without touching either process. Threaded (an accept thread, two pump
threads per connection), so it works from plain synchronous tests and harnesses.

``cut(mode="blackhole")`` closes every forwarded connection and then accepts new ones but never
forwards a byte (a partition: the client's requests time out); ``cut(mode="refuse")`` closes new
connections at once (the client sees the peer hang up). ``restore()`` drops the held sockets
and forwards again.

What it never does: listen anywhere but the host it is given (loopback by default), or leave a
thread or a socket behind after ``stop()``.

Caveat for Kafka: a client only bootstraps through the proxy; it then connects to the broker's
*advertised* listener. Cutting a bootstrap-only proxy does not cut the data path unless the broker
advertises the proxy's address on the listener the client uses.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Literal, Self

from orchestrator.lifecycle import StoppedOnExit

__all__ = ["CutMode", "TcpProxy"]

CutMode = Literal["blackhole", "refuse"]

_CHUNK = 65_536
_ACCEPT_POLL_S = 0.1
_CONNECT_TIMEOUT_S = 5.0


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class _Link:
    """One forwarded connection: the client's socket, the upstream socket and two pumps."""

    def __init__(
        self, client: socket.socket, upstream: socket.socket, on_close: Callable[[_Link], None]
    ) -> None:
        self.client = client
        self.upstream = upstream
        self._on_close = on_close
        self._closed = threading.Event()
        self.threads = [
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True),
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True),
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(_CHUNK)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        self.close()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        _close(self.client)
        _close(self.upstream)
        self._on_close(self)

    def join(self, timeout: float) -> None:
        for thread in self.threads:
            if thread is not threading.current_thread():
                thread.join(timeout)


class TcpProxy(StoppedOnExit):
    """Forward ``listen_host:<port>`` to ``target_host:target_port``; ``cut()``/``restore()``."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
    ) -> None:
        self.target = (target_host, target_port)
        self._listen = (listen_host, listen_port)
        self._server: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._links: set[_Link] = set()
        self._held: list[socket.socket] = []
        self._mode: CutMode | None = None
        self.accepted = 0
        self.forwarded = 0

    # -- lifecycle

    def start(self) -> Self:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(self._listen)
        server.listen(128)
        server.settimeout(_ACCEPT_POLL_S)
        self._server = server
        self._stop.clear()
        self._thread = threading.Thread(target=self._accept_loop, name="tcp-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listener and every connection; join the threads. Idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self._server is not None:
            _close(self._server)
            self._server = None
        self._drop_links()
        self._drop_held()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        port: int = self._server.getsockname()[1]
        return port

    @property
    def address(self) -> str:
        """``host:port`` to give clients instead of the target's."""
        return f"{self._listen[0]}:{self.port}"

    # -- faults

    @property
    def is_cut(self) -> bool:
        return self._mode is not None

    def cut(self, mode: CutMode = "blackhole") -> None:
        """Sever every open connection; then hold (blackhole) or close (refuse) new ones."""
        with self._lock:
            self._mode = mode
        self._drop_links()

    def restore(self) -> None:
        """Forward new connections again (clients reconnect by themselves)."""
        with self._lock:
            self._mode = None
        self._drop_held()

    def open_connections(self) -> int:
        with self._lock:
            return len(self._links)

    # -- inside

    def _drop_links(self) -> None:
        with self._lock:
            links = list(self._links)
        for link in links:
            link.close()
        for link in links:
            link.join(5)

    def _drop_held(self) -> None:
        with self._lock:
            held, self._held = self._held, []
        for sock in held:
            _close(sock)

    def _forget(self, link: _Link) -> None:
        with self._lock:
            self._links.discard(link)

    def _accept_loop(self) -> None:
        server = self._server
        assert server is not None
        while not self._stop.is_set():
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            self.accepted += 1
            with self._lock:
                mode = self._mode
                if mode == "blackhole":
                    self._held.append(client)
                    continue
            if mode == "refuse":
                _close(client)
                continue
            self._forward(client)

    def _forward(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=_CONNECT_TIMEOUT_S)
        except OSError:
            _close(client)
            return
        upstream.settimeout(None)
        for sock in (client, upstream):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = _Link(client, upstream, self._forget)
        with self._lock:
            if self._mode is not None:  # cut while we were connecting
                _close(client)
                _close(upstream)
                return
            self._links.add(link)
            self.forwarded += 1
        link.start()
