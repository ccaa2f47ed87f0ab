"""How the worker spreads calls over a stage's replicas (docs/DEPLOY.md, "Load balancing").

In Kubernetes a stage's headless Service name resolves to every ready pod. The client balances round-robin
over all resolved addresses (gRPC's default, pick_first, would pin every call to one pod), and the servers'
maximum connection age makes clients re-resolve, so replicas added later get calls too. Two real warp
servers stand in for two pods; an ``ipv4:`` target with both addresses stands in for the DNS answer.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tryon.client import ClientSettings, WarpClient
from tryon.runtime import StageServer
from tryon.service_main import build_server


def _calls(server: StageServer) -> float:
    return sum(
        sample.value
        for metric in server.metrics.registry.collect()
        for sample in metric.samples
        if sample.name == "tryon_grpc_requests_total"
    )


@pytest.fixture(scope="module")
def replicas(monkeypatch_module: pytest.MonkeyPatch) -> Iterator[list[StageServer]]:
    monkeypatch_module.setenv("TRYON_MAX_CONNECTION_AGE_S", "1")
    monkeypatch_module.setenv("TRYON_MAX_CONNECTION_AGE_GRACE_S", "5")
    servers = [
        build_server("warp", ["--host", "127.0.0.1", "--port", "0", "--metrics-port", "0"]) for _ in range(2)
    ]
    for server in servers:
        server.start()
    try:
        for server in servers:
            assert server.ready.wait(60), server.setup_error
        yield servers
    finally:
        for server in servers:
            server.stop(grace=0)


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_calls_are_spread_over_every_resolved_address(replicas: list[StageServer]) -> None:
    target = "ipv4:" + ",".join(f"127.0.0.1:{server.port}" for server in replicas)
    before = [_calls(server) for server in replicas]
    handled = [0.0] * len(replicas)
    with WarpClient(target, ClientSettings()) as client:
        client.setup()
        # Round-robin skips a connection that is (re)connecting, which the 1 s connection age makes frequent
        # on a loaded machine; so keep calling, within bounds, until every replica has had its share.
        # pick_first would send every call to the first address, and the second would stay at 0.
        deadline = time.monotonic() + 20
        for _ in range(200):
            client.info()
            handled = [_calls(server) - start for server, start in zip(replicas, before, strict=True)]
            if min(handled) >= 3 or time.monotonic() > deadline:
                break
    assert all(count >= 3 for count in handled), f"calls per replica: {handled}"


def test_servers_close_aged_connections_and_clients_reconnect(replicas: list[StageServer]) -> None:
    """After TRYON_MAX_CONNECTION_AGE_S the server ends the connection (GOAWAY): the channel leaves READY,
    which is when gRPC re-resolves the name; calls go on succeeding over the next connection."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    assert replicas[0].settings.max_connection_age_s == 1
    states: list[grpc.ChannelConnectivity] = []
    with grpc.insecure_channel(f"127.0.0.1:{replicas[0].port}") as channel:
        channel.subscribe(states.append, try_to_connect=True)
        health = health_pb2_grpc.HealthStub(channel)
        health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and grpc.ChannelConnectivity.IDLE not in states[1:]:
            time.sleep(0.1)
        assert grpc.ChannelConnectivity.READY in states
        assert states.index(grpc.ChannelConnectivity.IDLE, 1) > states.index(grpc.ChannelConnectivity.READY)
        health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    with WarpClient(f"127.0.0.1:{replicas[0].port}", ClientSettings()) as client:
        client.setup()
        for _ in range(3):
            client.info()
            time.sleep(0.6)
