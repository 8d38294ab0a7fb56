"""Traffic protection end to end: who the client is (forwarded_allow_ips,
real_ip_header) and the per-client limits (limit_req_rate/burst/nodelay,
limit_conn, allow/deny, limit_dry_run), against real `fastcore serve`
processes, with clients bound to loopback aliases (on Linux all of
127.0.0.0/8 is local) so that one test has many client addresses.
"""
import http.client
import json
import re
import signal
import socket
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import request_bytes

APP = """
import json, os, time

def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/slow":
        time.sleep(float(environ["QUERY_STRING"] or "1"))
    body = json.dumps({"remote_addr": environ["REMOTE_ADDR"], "scheme": environ["wsgi.url_scheme"],
                       "pid": os.getpid()}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
"""

ADMIN = re.compile(r"fastcore: admin on http://127\.0\.0\.1:(\d+) \(pid (\d+)\)")


def ask(server, target="/", headers=(), source="127.0.0.1", timeout=10.0):
    """One GET on a new connection from `source` -> (status, headers dict, body)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", server.port))
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
        connection.sock = sock
        connection.request("GET", target, headers=dict(headers))
        response = connection.getresponse()
        body = response.read()
        return response.status, {name.lower(): value for name, value in response.getheaders()}, body
    finally:
        sock.close()


def metrics(server):
    port = int(server.wait_for_stderr(ADMIN.pattern).group(1))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def refused(samples, reason, dry_run=False):
    return samples[("fastcore_limit_refused_total", (("dry_run", "true" if dry_run else "false"),
                                                     ("reason", reason)))]


# -- request rate -----------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_limits_rate_answers_429_at_the_configured_rate(serve, workers):
    """20 r/s, burst 0: over 3 s of requests as fast as one client sends
    them, the ones let through come at 20 a second (within 10%), the rest
    get 429 with Retry-After. With 2 workers sharing the port (SO_REUSEPORT
    spreads the connections over both) the limit is the same: one table."""
    rate, seconds = 20, 3.0
    server = serve(APP, "--workers", str(workers), "--reuse-port", "--limit-req-rate", str(rate),
                   "--limit-req-nodelay")
    passed, refusals, pids = [], 0, set()
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        status, headers, body = ask(server)
        if status == 200:
            passed.append(time.monotonic())
            pids.add(json.loads(body)["pid"])
        else:
            assert status == 429, (status, body)
            assert int(headers["retry-after"]) >= 1
            refusals += 1
    assert refusals > 10 * len(passed), (refusals, len(passed))
    measured = (len(passed) - 1) / (passed[-1] - passed[0])
    assert rate * 0.9 <= measured <= rate * 1.1, (measured, len(passed))
    if workers == 2:
        # both workers let requests through, and the sum kept to one rate
        assert len(pids) == 2, pids


def test_limits_burst_delays_requests_to_the_rate(serve):
    """Within the burst and without nodelay, a request waits its turn
    instead of being refused; past the burst it gets 429."""
    server = serve(APP, "--limit-req-rate", "5", "--limit-req-burst", "2", "--threads", "4")
    results = []

    def one():
        began = time.monotonic()
        status, _, _ = ask(server)
        results.append((status, time.monotonic() - began))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for thread in threads:
        thread.start()
        time.sleep(0.02)  # in this order: the 4th comes when the burst is taken
    for thread in threads:
        thread.join()
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 200, 200, 429], results
    # two of the three that passed were held: 200 ms and 400 ms at 5 r/s
    waits = sorted(elapsed for status, elapsed in results if status == 200)
    assert waits[0] < 0.15 and waits[1] >= 0.15 and waits[2] >= 0.3, results


def test_limits_rate_is_per_client_address(serve):
    server = serve(APP, "--limit-req-rate", "1", "--limit-req-nodelay")
    assert ask(server, source="127.0.0.2")[0] == 200
    assert ask(server, source="127.0.0.2")[0] == 429
    assert ask(server, source="127.0.0.3")[0] == 200  # another client is not affected


# -- who the client is ------------------------------------------------------------


def test_limits_spoofed_forwarded_for_from_untrusted_peer_changes_nothing(serve):
    """From a peer outside forwarded_allow_ips, X-Forwarded-For is ignored:
    REMOTE_ADDR stays the peer and a new value per request does not escape
    the rate limit."""
    server = serve(APP, "--forwarded-allow-ips", "10.0.0.0/8", "--limit-req-rate", "1", "--limit-req-nodelay")
    status, _, body = ask(server, headers={"X-Forwarded-For": "203.0.113.1"})
    assert status == 200 and json.loads(body)["remote_addr"] == "127.0.0.1"
    for i in range(2, 12):
        assert ask(server, headers={"X-Forwarded-For": f"203.0.113.{i}"})[0] == 429


def test_limits_forwarded_for_from_trusted_peer_names_the_client(serve):
    """The same requests from a trusted peer (loopback, the default): each
    names another client, each passes; REMOTE_ADDR is the rightmost
    untrusted address, and a spoofed left part is not believed."""
    server = serve(APP, "--limit-req-rate", "1", "--limit-req-nodelay")
    for i in range(1, 6):
        status, _, body = ask(server, headers={"X-Forwarded-For": f"6.6.6.6, 203.0.113.{i}, 127.0.0.5"})
        assert status == 200 and json.loads(body)["remote_addr"] == f"203.0.113.{i}"
    # the client named twice is limited as one
    assert ask(server, headers={"X-Forwarded-For": "203.0.113.1"})[0] == 429


@pytest.mark.parametrize("header, value, expected", [
    ("Forwarded", 'for=198.51.100.7;proto=https, for="[2001:db8::1]:4711"', "2001:db8::1"),
    ("Forwarded", "for=198.51.100.7, for=127.0.0.9", "198.51.100.7"),
    ("X-Real-IP", "198.51.100.8", "198.51.100.8"),
    ("CF-Connecting-IP", "198.51.100.9", "198.51.100.9"),
])
def test_limits_real_ip_header_kinds(serve, header, value, expected):
    server = serve(APP, "--real-ip-header", header)
    status, _, body = ask(server, headers={header: value, "X-Forwarded-For": "192.0.2.1"})
    assert status == 200 and json.loads(body)["remote_addr"] == expected


def test_limits_forwarded_proto_sets_url_scheme_from_trusted_peer_only(serve):
    trusted = serve(APP)
    untrusted = serve(APP, "--forwarded-allow-ips", "10.0.0.0/8")
    assert json.loads(ask(trusted, headers={"X-Forwarded-Proto": "https"})[2])["scheme"] == "https"
    assert json.loads(ask(untrusted, headers={"X-Forwarded-Proto": "https"})[2])["scheme"] == "http"


def test_limits_access_log_names_the_resolved_client(serve, tmp_path):
    log = tmp_path / "access.log"
    server = serve(APP, "--access-log", str(log))
    ask(server, headers={"X-Forwarded-For": "198.51.100.20"})
    server.stop()
    assert log.read_text().startswith("198.51.100.20 ")


# -- connections ------------------------------------------------------------------


def test_limits_conn_holds(serve):
    """limit_conn 2: of three requests in progress at once from one client
    (each takes a second), one gets 503; another client meanwhile is not
    affected; once they end, the count is back."""
    server = serve(APP, "--limit-conn", "2", "--threads", "8")
    results = []

    def slow():
        results.append(ask(server, "/slow", source="127.0.0.2")[0])

    threads = [threading.Thread(target=slow) for _ in range(3)]
    for thread in threads:
        thread.start()
    other = ask(server, "/slow?0.2", source="127.0.0.3")[0]
    for thread in threads:
        thread.join()
    assert sorted(results) == [200, 200, 503]
    assert other == 200
    assert ask(server, "/", source="127.0.0.2")[0] == 200
    assert ask(server, "/", source="127.0.0.2")[0] == 200


def until(what, expected, timeout):
    """Calls what() until it returns expected (or timeout seconds pass); returns the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        answer = what()
        if answer == expected or time.monotonic() > deadline:
            return answer
        time.sleep(0.02)


def test_limits_conn_released_when_the_client_goes(serve):
    """A client that hangs up while its request runs gives its count back."""
    server = serve(APP, "--limit-conn", "1", "--threads", "4")
    with server.connect() as client:
        client.send(request_bytes("GET", "/slow?1"))
        assert until(lambda: ask(server)[0], 503, 0.8) == 503
    # the application call ends, its response finds no client: the count is back
    assert until(lambda: ask(server)[0], 200, 5.0) == 200


# -- allow and deny ---------------------------------------------------------------


def test_limits_deny_and_allow(serve):
    denied = serve(APP, "--deny", "127.0.0.2")
    assert ask(denied, source="127.0.0.2")[0] == 403
    assert ask(denied, source="127.0.0.1")[0] == 200
    allowed = serve(APP, "--allow", "127.0.0.3", "--allow", "10.0.0.0/8")
    assert ask(allowed, source="127.0.0.1")[0] == 403
    assert ask(allowed, source="127.0.0.3")[0] == 200


def test_limits_per_location_in_the_config_file(serve, tmp_path):
    """A [[static]] table's limits apply to its location; the application
    takes the top-level ones (none here)."""
    files = tmp_path / "files"
    files.mkdir()
    (files / "a.txt").write_text("a")
    config = tmp_path / "fastcore.toml"
    config.write_text(f"""
[[static]]
prefix = "/files"
root = "{files}"
limit_req_rate = 1
limit_req_nodelay = true
deny = ["127.0.0.4"]
""")
    server = serve(APP, "--config", str(config))
    assert ask(server, "/files/a.txt")[0] == 200
    assert ask(server, "/files/a.txt")[0] == 429
    assert ask(server, "/files/a.txt", source="127.0.0.4")[0] == 403
    for _ in range(5):
        assert ask(server, "/")[0] == 200


# -- dry run and metrics -----------------------------------------------------------


def test_limits_metrics_count_refusals_by_reason(serve):
    server = serve(APP, "--limit-req-rate", "1", "--limit-req-nodelay", "--deny", "127.0.0.9",
                   "--admin", "127.0.0.1:0")
    assert [ask(server)[0] for _ in range(4)] == [200, 429, 429, 429]
    assert ask(server, source="127.0.0.9")[0] == 403
    samples = metrics(server)
    assert refused(samples, "rate") == 3
    assert refused(samples, "deny") == 1
    assert refused(samples, "conn") == 0
    assert refused(samples, "rate", dry_run=True) == 0
    server.wait_for_stderr(r"limit rate \(application\): refused 127\.0\.0\.1")


def test_limits_dry_run_refuses_nothing_and_counts(serve):
    server = serve(APP, "--limit-req-rate", "1", "--limit-req-nodelay", "--deny", "127.0.0.9",
                   "--limit-dry-run", "--admin", "127.0.0.1:0")
    assert [ask(server)[0] for _ in range(4)] == [200, 200, 200, 200]
    assert ask(server, source="127.0.0.9")[0] == 200
    samples = metrics(server)
    assert refused(samples, "rate", dry_run=True) == 3
    assert refused(samples, "deny", dry_run=True) == 1
    assert refused(samples, "rate") == 0
    server.wait_for_stderr(r"limit rate \(application\): dry run, would refuse 127\.0\.0\.1")


def test_limits_configured_by_a_reload(serve, tmp_path):
    """A reload (HUP) that adds a rate limit: the arbiter makes the shared
    table then, before forking the new workers, which use it."""
    config = tmp_path / "fastcore.toml"
    config.write_text("workers = 2\n")
    server = serve(APP, "--config", str(config))
    assert [ask(server)[0] for _ in range(5)] == [200] * 5
    config.write_text("workers = 2\nlimit_req_rate = 1\nlimit_req_nodelay = true\n")
    server.proc.send_signal(signal.SIGHUP)
    assert until(lambda: ask(server)[0], 429, 10.0) == 429
    server.wait_for_stderr(r"limit rate \(application\): refused 127\.0\.0\.1")
