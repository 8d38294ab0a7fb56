"""Active health checks: the verdict rules in-process, and the prober against
real servers on a real fastcore Loop, its probes sent through a real
ProxyLocation's upstream path (the tests that need the build)."""
import http.server
import os
import random
import socket
import socketserver
import threading

import pytest

from fastcore.config import build_config
from fastcore.proxy import Member, Pool
from fastcore.proxy.health import JITTER, HealthCheck, Prober, next_delay, parse_status_ranges


def test_health_unknown_counts_as_available_and_first_fail_marks_failing():
    check = HealthCheck(rise=2, fall=3)
    member = Member("10.0.0.1:80")
    assert member.health == "unknown" and member.available(0.0)
    assert check.record(member, False, 1.0)
    assert member.health == "failing" and not member.available(1.0)


def test_health_rise_and_fall_transitions():
    check = HealthCheck(rise=2, fall=3)
    member = Member("10.0.0.1:80")
    assert not check.record(member, True, 0.0)
    assert member.health == "unknown"
    assert check.record(member, True, 1.0)
    assert member.health == "passing" and member.recovered_at is None  # it was never out
    # fall=3: two fails and a pass do not take it out; three in a row do
    assert not check.record(member, False, 2.0)
    assert not check.record(member, False, 3.0)
    assert not check.record(member, True, 4.0)
    assert not check.record(member, False, 5.0)
    assert not check.record(member, False, 6.0)
    assert check.record(member, False, 7.0)
    assert member.health == "failing"
    # rise=2: one pass is not enough, an interrupted streak starts over
    assert not check.record(member, True, 8.0)
    assert not check.record(member, False, 9.0)
    assert not check.record(member, True, 10.0)
    assert member.health == "failing"
    assert check.record(member, True, 11.0)
    assert member.health == "passing" and member.recovered_at == 11.0


def test_health_recovery_starts_slow_start_in_pool():
    pool = Pool("app", [Member("10.0.0.1:80", weight=10), Member("10.0.0.2:80", weight=10)], slow_start=100.0)
    check = HealthCheck(rise=1, fall=1)
    member = pool.members[0]
    check.record(member, False, 0.0)
    assert pool.snapshot(1.0)["members"][0]["effective_weight"] == 0
    check.record(member, True, 50.0)
    weights = [pool.snapshot(now)["members"][0]["effective_weight"] for now in (60.0, 100.0, 150.0)]
    assert weights == [1.0, 5.0, 10]


def test_health_status_ranges():
    assert parse_status_ranges("200-399") == ((200, 399),)
    assert parse_status_ranges("200, 204,300-302") == ((200, 200), (204, 204), (300, 302))
    assert parse_status_ranges([200, "301-302"]) == ((200, 200), (301, 302))
    check = HealthCheck(status="200,204")
    assert check.accepts(204) and not check.accepts(201)
    for bad in ("", "abc", "399-200", "700", "20x"):
        with pytest.raises(ValueError):
            parse_status_ranges(bad)


def test_health_settings_by_their_names():
    check = HealthCheck.from_settings({"health_path": "/ready", "health_interval": 1.5, "health_rise": 4,
                                       "health_status": [200], "unrelated": 1})
    assert (check.path, check.interval, check.rise, check.fall, check.status_ranges) == ("/ready", 1.5, 4, 3, ((200, 200),))
    with pytest.raises(ValueError):
        HealthCheck(path="health")
    with pytest.raises(ValueError):
        HealthCheck(path="/a b")


def test_health_request_bytes():
    check = HealthCheck(path="/health")
    assert check.request_for(Member("[::1]:8000")).startswith(
        b"GET /health HTTP/1.1\r\nHost: [::1]:8000\r\nUser-Agent: fastcore-health-check\r\n")
    assert b"\r\nHost: localhost\r\n" in check.request_for(Member("unix:/run/app.sock"))
    assert check.request_for(Member("10.0.0.1:80")).endswith(b"\r\n\r\n")


def test_health_jitter_bounds():
    source = random.Random(3)
    delays = [next_delay(10.0, source) for _ in range(2000)]
    assert all(10.0 * (1 - JITTER) <= delay <= 10.0 * (1 + JITTER) for delay in delays)
    # it does spread: both halves of the band are used, and not one value
    assert min(delays) < 9.0 and max(delays) > 11.0
    assert 0.10 <= JITTER <= 0.20


# -- the prober on a real loop --------------------------------------------------------


class HealthHandler(http.server.BaseHTTPRequestHandler):
    """Answers GET with the server's current status and remembers the request."""
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.server.seen.append((self.path, self.headers.get("Host"), self.headers.get("Connection")))
        body = b"ok\n"
        self.send_response(self.server.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the prober hangs up after the status line, as it should

    def log_message(self, *args):
        pass

    def address_string(self):
        return "client"  # a unix socket's peer address is ''


class TcpHealthServer(http.server.ThreadingHTTPServer):
    daemon_threads = True


class UnixHealthServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def serve(server, status):
    server.status = status
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return thread


def closed_port():
    """A port with no listener: bound, then closed (the kernel refuses connects)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_until(loop, condition, iterations=5000):
    """Turns the loop until condition() holds; bounded, so a bug fails the
    test instead of hanging it (each iteration waits at most for the next timer)."""
    for _ in range(iterations):
        if condition():
            return True
        loop.run_once()
    return condition()


@pytest.fixture
def loop():
    core_loop = pytest.importorskip("fastcore._core.loop", reason="needs the build: python setup.py build_ext --inplace")
    return core_loop.Loop()


def data_path(loop, pool, *args):
    """The probes' transport: the `probe` of a real ProxyLocation over pool
    (settings as `fastcore serve --proxy ... ARGS` would give it)."""
    from fastcore._core.proxy import ProxyLocation
    from fastcore._core.router import Router
    config = build_config({"proxy": ["/=127.0.0.1:9"], **dict(args)}, environ={})
    location = ProxyLocation(Router(), loop, "/", pool, config.proxy[0], config)
    return location


def test_health_prober_against_real_servers(loop, tmp_path):
    healthy = TcpHealthServer(("127.0.0.1", 0), HealthHandler)
    sick = TcpHealthServer(("127.0.0.1", 0), HealthHandler)
    socket_path = str(tmp_path / "app.sock")
    over_unix = UnixHealthServer(socket_path, HealthHandler)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts into its backlog and never answers
    servers = [healthy, sick, over_unix]
    threads = [serve(healthy, 200), serve(sick, 503), serve(over_unix, 204)]
    addresses = {
        "healthy": f"127.0.0.1:{healthy.server_address[1]}",
        "sick": f"127.0.0.1:{sick.server_address[1]}",
        "unix": f"unix:{socket_path}",
        "refused": f"127.0.0.1:{closed_port()}",
        "silent": f"127.0.0.1:{silent.getsockname()[1]}",
    }
    pool = Pool("app", [Member(address) for address in addresses.values()])
    member = {name: pool.by_address[address] for name, address in addresses.items()}
    # a generous timeout: the machine may be busy, and only the silent listener should hit it
    check = HealthCheck(path="/health", interval=0.05, timeout=1.0, status="200-299", rise=2, fall=2)
    location = data_path(loop, pool)
    prober = Prober(loop, pool, check, location.probe, random_source=random.Random(1))
    handles_before = loop.handle_count
    try:
        prober.start()
        assert run_until(loop, lambda: all(m.health != "unknown" for m in pool.members))
        assert member["healthy"].health == "passing"
        assert member["unix"].health == "passing"
        assert member["sick"].health == "failing"
        assert member["refused"].health == "failing"
        assert member["silent"].health == "failing"
        path, host, connection = healthy.seen[0]
        assert (path, host, connection) == ("/health", addresses["healthy"], None)  # kept alive
        assert over_unix.seen[0][1] == "localhost"

        # the sick one recovers: passing after `rise` probes, slow start begins
        sick.status = 200
        assert run_until(loop, lambda: member["sick"].health == "passing")
        assert member["sick"].recovered_at is not None

        # the healthy one starts failing: out after `fall` probes
        healthy.status = 500
        assert run_until(loop, lambda: member["healthy"].health == "failing")
        assert not member["healthy"].available(loop.time())
    finally:
        prober.stop()
        location.close_idle()  # the probes' kept-alive connections
        for server in servers:
            server.shutdown()
            server.server_close()
        silent.close()
        for thread in threads:
            thread.join(5)
    # every probe gave back its watcher and its socket
    assert loop.handle_count == handles_before
    assert not prober.in_flight


def test_health_prober_skips_draining_and_picks_up_new_members(loop):
    server = TcpHealthServer(("127.0.0.1", 0), HealthHandler)
    thread = serve(server, 200)
    address = f"127.0.0.1:{server.server_address[1]}"
    pool = Pool("app", [Member(f"127.0.0.1:{closed_port()}")])
    location = data_path(loop, pool)
    prober = Prober(loop, pool, HealthCheck(interval=0.05, timeout=1.0, rise=1, fall=1), location.probe)
    try:
        prober.start()
        assert run_until(loop, lambda: pool.members[0].health == "failing")
        gone = pool.remove(pool.members[0].address)
        joined = pool.add(Member(address))
        assert run_until(loop, lambda: joined.health == "passing")
        count = len(server.seen)
        assert count >= 1
        gone.health = "unknown"
        # a few more rounds: the new member is probed again, the draining one never
        assert run_until(loop, lambda: len(server.seen) >= count + 2)
        assert gone.health == "unknown"
    finally:
        prober.stop()
        location.close_idle()
        server.shutdown()
        server.server_close()
        thread.join(5)


class CountingHandler(HealthHandler):
    def setup(self):
        super().setup()
        self.server.connections += 1


def test_health_probes_go_through_the_data_path(loop):
    """The probe is a proxied request in all but name: kept-alive
    connections are reused from one round to the next, and a server whose
    status line is fine but whose response is not valid HTTP (a bad
    Content-Length) fails, as it would fail a proxied request."""
    kept = TcpHealthServer(("127.0.0.1", 0), CountingHandler)
    kept.connections = 0
    thread = serve(kept, 200)
    malformed = socket.socket()
    malformed.bind(("127.0.0.1", 0))
    malformed.listen(8)
    stop = threading.Event()

    def answer_badly():
        malformed.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = malformed.accept()
            except OSError:
                continue
            with conn:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: twelve\r\n\r\nhello world!")

    bad_thread = threading.Thread(target=answer_badly, daemon=True)
    bad_thread.start()
    good = Member(f"127.0.0.1:{kept.server_address[1]}")
    bad = Member(f"127.0.0.1:{malformed.getsockname()[1]}")
    pool = Pool("app", [good, bad])
    location = data_path(loop, pool)
    prober = Prober(loop, pool, HealthCheck(interval=0.02, timeout=1.0, rise=1, fall=1), location.probe)
    try:
        prober.start()
        assert run_until(loop, lambda: len(kept.seen) >= 5 and bad.health != "unknown")
        assert good.health == "passing"
        assert bad.health == "failing"
        assert kept.connections == 1, f"{len(kept.seen)} probes took {kept.connections} connections"
        assert good.requests == 0 and good.failures == 0  # probes are not the member's requests
    finally:
        prober.stop()
        location.close_idle()
        stop.set()
        bad_thread.join(5)
        malformed.close()
        kept.shutdown()
        kept.server_close()
        thread.join(5)
