"""The fault-test TCP proxy against a local echo server: forwards, cuts, refuses, restores.

No broker: a threaded echo server on loopback stands in for it.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from orchestrator.testing.kafka_cluster import wait_for
from orchestrator.testing.tcp_proxy import TcpProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65_536):
            self.request.sendall(data)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = _Server(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def proxy(echo_port: int) -> Iterator[TcpProxy]:
    with TcpProxy("127.0.0.1", echo_port) as proxy:
        yield proxy


def connect(proxy: TcpProxy, timeout: float = 2.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout)


def echo(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(65_536)
        if not chunk:
            break
        got += chunk
    return got


def echoes(sock: socket.socket, payload: bytes) -> bool:
    try:
        return echo(sock, payload) == payload
    except OSError:
        return False


def test_forwards_both_ways_including_large_payloads(proxy: TcpProxy) -> None:
    assert proxy.address == f"127.0.0.1:{proxy.port}"
    with connect(proxy) as sock:
        assert echo(sock, b"hello") == b"hello"
        big = bytes(range(256)) * 4_000  # 1 MB, more than any socket buffer
        assert echo(sock, big) == big
    assert proxy.forwarded == 1


def test_many_concurrent_connections(proxy: TcpProxy) -> None:
    socks = [connect(proxy) for _ in range(20)]
    try:
        for i, sock in enumerate(socks):
            assert echo(sock, f"conn-{i}".encode()) == f"conn-{i}".encode()
        assert proxy.open_connections() == 20
    finally:
        for sock in socks:
            sock.close()
    wait_for(lambda: proxy.open_connections() == 0, 5, "the proxy to notice the closes")


def test_cut_closes_open_connections_and_blackholes_new_ones(proxy: TcpProxy) -> None:
    with connect(proxy) as sock:
        assert echo(sock, b"before") == b"before"
        proxy.cut()
        assert proxy.is_cut
        assert not echoes(sock, b"after")  # EOF or reset: the open connection is gone
    assert proxy.open_connections() == 0
    with connect(proxy, timeout=0.5) as held:  # the connect succeeds ...
        held.sendall(b"into the void")
        with pytest.raises(TimeoutError):  # ... but nothing ever comes back
            held.recv(100)


def test_refuse_mode_hangs_up_at_once(proxy: TcpProxy) -> None:
    proxy.cut(mode="refuse")
    with connect(proxy) as sock:
        assert not echoes(sock, b"anyone?")


def test_restore_forwards_again(proxy: TcpProxy) -> None:
    proxy.cut()
    held = connect(proxy, timeout=0.5)
    wait_for(lambda: proxy.accepted == 1, 5, "the proxy to hold the connection")
    proxy.restore()
    assert not proxy.is_cut
    assert held.recv(100) == b""  # the held connection is dropped on restore
    held.close()
    with connect(proxy) as sock:
        assert echo(sock, b"back") == b"back"


def test_stop_closes_everything_and_frees_the_port(echo_port: int) -> None:
    proxy = TcpProxy("127.0.0.1", echo_port).start()
    port = proxy.port
    sock = connect(proxy)
    assert echo(sock, b"x") == b"x"
    proxy.stop()
    assert sock.recv(10) == b""
    sock.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    proxy.stop()  # idempotent


def test_an_unreachable_target_closes_the_client(echo_port: int) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    with TcpProxy("127.0.0.1", dead_port) as proxy, connect(proxy) as sock:
        assert sock.recv(10) == b""
