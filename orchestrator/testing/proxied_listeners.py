"""Per-client broker listeners reached only through a :class:`TcpProxy`, so a test can cut one
client's link to the whole cluster without touching the others.

Why a listener per client and not one proxy in front of the broker: a Kafka client bootstraps
from the address it is given and then connects to the *advertised* address of each broker's
listener it came in on. So each client name ``c`` gets, on every node ``n``, a listener
``PX_C`` bound to a private backend port and advertised as the port of a proxy that forwards to
it. A client bootstrapped through ``bootstrap(c)`` then only ever talks through ``c``'s proxies
(one per node), and ``cut(c)`` severs exactly its connections: its requests time out like a
network partition while the broker, the other clients and the inter-broker traffic go on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.testing.tcp_proxy import CutMode, TcpProxy

__all__ = ["ProxiedListeners"]


@dataclass(frozen=True, slots=True)
class _Route:
    client: str
    node_id: int
    backend_port: int  # the broker listens here
    front_port: int  # the proxy listens here; the broker advertises it


class ProxiedListeners:
    """The listeners, ports and proxies of every (client, node) pair; start/stop the proxies."""

    def __init__(self, clients: Sequence[str]) -> None:
        bad = [c for c in clients if not c.replace("-", "").replace("_", "").isalnum()]
        if bad or len(set(clients)) != len(clients):
            raise ValueError(f"proxied client names must be unique and alphanumeric: {clients}")
        self.clients = tuple(clients)
        self._routes: list[_Route] = []
        self._proxies: dict[tuple[str, int], TcpProxy] = {}

    def __bool__(self) -> bool:
        return bool(self.clients)

    def plan(self, node_ids: Sequence[int], ports: Sequence[int]) -> None:
        """Assign two free ports (backend, front) per (client, node); ``ports`` has them all."""
        need = 2 * len(self.clients) * len(node_ids)
        if len(ports) != need:
            raise ValueError(f"need {need} ports, got {len(ports)}")
        it = iter(ports)
        self._routes = [
            _Route(client, node_id, next(it), next(it))
            for client in self.clients
            for node_id in node_ids
        ]

    def port_count(self, nodes: int) -> int:
        return 2 * len(self.clients) * nodes

    @staticmethod
    def listener_name(client: str) -> str:
        return "PX_" + client.upper().replace("-", "_")

    def node_listeners(self, node_id: int) -> tuple[list[str], list[str], list[str]]:
        """(listeners, advertised listeners, security map entries) to add to a node's config."""
        listeners, advertised, protocols = [], [], []
        for route in self._routes:
            if route.node_id != node_id:
                continue
            name = self.listener_name(route.client)
            listeners.append(f"{name}://127.0.0.1:{route.backend_port}")
            advertised.append(f"{name}://127.0.0.1:{route.front_port}")
            protocols.append(f"{name}:PLAINTEXT")
        return listeners, advertised, protocols

    def start(self) -> None:
        """Start every proxy on its planned front port (before the brokers, which advertise it)."""
        for route in self._routes:
            proxy = TcpProxy("127.0.0.1", route.backend_port, listen_port=route.front_port)
            self._proxies[(route.client, route.node_id)] = proxy.start()

    def stop(self) -> None:
        for proxy in self._proxies.values():
            proxy.stop()
        self._proxies.clear()

    def bootstrap(self, client: str) -> str:
        """The bootstrap servers ``client`` must use: its proxies' addresses, one per node."""
        self._known(client)
        return ",".join(f"127.0.0.1:{r.front_port}" for r in self._routes if r.client == client)

    def cut(self, client: str, mode: CutMode = "blackhole") -> None:
        for proxy in self._of(client):
            proxy.cut(mode)

    def restore(self, client: str) -> None:
        for proxy in self._of(client):
            proxy.restore()

    def is_cut(self, client: str) -> bool:
        return any(proxy.is_cut for proxy in self._of(client))

    def _of(self, client: str) -> list[TcpProxy]:
        self._known(client)
        return [p for (c, _), p in self._proxies.items() if c == client]

    def _known(self, client: str) -> None:
        if client not in self.clients:
            raise KeyError(f"no proxied listener for {client!r} (have {list(self.clients)})")
