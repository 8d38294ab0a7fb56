"""Traffic protection end to end: the bandwidth of responses (limit_rate
after limit_rate_after bytes) for static files, an application's body and a
proxied body; the bounded queue in front of the application (max_pending:
503 with Retry-After at once, /health overloaded, /metrics counting the
refusal); and the minimum request-body rate (min_body_rate: 408 for a
trickle, a slow but steady upload completes).

Rates are measured on 10 MiB downloads read as fast as the client can; a
limit is met when the measured rate is within 10% of the setting.
"""
import os
import re
import select
import socket
import time
import urllib.request

import pytest

from tests.e2e.conftest import request_bytes
from tests.e2e.test_proxy import proxy, upstreams  # noqa: F401 (fixtures)

MIB = 1 << 20
DOWNLOAD = 10 * MIB
ADMIN = re.compile(r"fastcore: admin on http://127\.0\.0\.1:(\d+) \(pid (\d+)\)")

STREAMING_APP = '''
BLOCK = b"x" * 65536

def app(environ, start_response):
    count = int(environ.get("QUERY_STRING") or "160")
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(count * len(BLOCK)))])
    return (BLOCK for _ in range(count))
'''


def pause(seconds):
    select.select([], [], [], seconds)


def timed_download(port, target, marks=()):
    """GET target on a new connection, reading as fast as possible: (body
    size, seconds from the request to the last byte, {mark: seconds when
    that many body bytes had arrived})."""
    reached = {}
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        started = time.monotonic()
        sock.sendall(request_bytes("GET", target, [("Connection", "close")]))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"closed before the head: {data!r}"
            data += chunk
        head, body_start = data.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200 "), head
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
        size = len(body_start)
        while size < length:
            chunk = sock.recv(1 << 20)
            assert chunk, f"closed after {size} of {length} bytes"
            size += len(chunk)
            for mark in marks:
                if mark not in reached and size >= mark:
                    reached[mark] = time.monotonic() - started
        return size, time.monotonic() - started, reached


def assert_rate(size, seconds, rate):
    measured = size / seconds
    assert 0.9 * rate <= measured <= 1.1 * rate, \
        f"{size} bytes in {seconds:.2f} s: {measured / MIB:.2f} MiB/s for a limit of {rate / MIB:.2f} MiB/s"


@pytest.fixture
def big_file(tmp_path):
    root = tmp_path / "files"
    root.mkdir()
    (root / "big.bin").write_bytes(os.urandom(DOWNLOAD))
    return root


# -- bandwidth --------------------------------------------------------------------------


def test_limit_rate_of_a_static_location_from_its_table(big_file, serve_files, tmp_path):
    config = tmp_path / "fastcore.toml"
    config.write_text(f'[[static]]\nprefix = "/"\nroot = "{big_file}"\nlimit_rate = "4m"\n')
    server = serve_files(big_file, "--config", str(config))
    size, seconds, _ = timed_download(server.port, "/big.bin")
    assert size == DOWNLOAD
    assert_rate(size, seconds, 4 * MIB)


def test_limit_rate_after_lets_the_first_bytes_go_at_full_speed(big_file, serve_files):
    server = serve_files(big_file, "--static", f"/={big_file}", "--limit-rate", "1m", "--limit-rate-after", "8m")
    size, seconds, reached = timed_download(server.port, "/big.bin", marks=(8 * MIB,))
    assert size == DOWNLOAD
    # 8 MiB at 1 MiB/s would take 8 s: they come at full speed, the last 2 MiB at the limit
    assert reached[8 * MIB] < 2.0, f"the first 8 MiB took {reached[8 * MIB]:.2f} s"
    assert_rate(size - 8 * MIB, seconds - reached[8 * MIB], 1 * MIB)


def test_limit_rate_of_an_application_body(serve):
    server = serve(STREAMING_APP, "--limit-rate", "4m")
    size, seconds, _ = timed_download(server.port, "/?160")
    assert size == DOWNLOAD
    assert_rate(size, seconds, 4 * MIB)
    # the limit is per response: a small one on the same settings is not held back
    size, seconds, _ = timed_download(server.port, "/?1")
    assert size == 65536 and seconds < 1.0


def test_limit_rate_of_a_proxied_body_from_its_table(upstreams, proxy):  # noqa: F811
    (a,) = upstreams("a")
    server = proxy(config=f'[[proxy]]\nprefix = "/"\nservers = ["{a.address}"]\nlimit_rate = "4m"\n')
    size, seconds, _ = timed_download(server.port, f"/download?{DOWNLOAD}")
    assert size == DOWNLOAD
    assert_rate(size, seconds, 4 * MIB)


def test_limited_proxied_body_is_not_buffered_whole(upstreams, proxy):  # noqa: F811
    """The upstream is read only as fast as the limit lets the client have
    it: the write_buffer_high backpressure pauses it meanwhile."""
    (a,) = upstreams("a")
    server = proxy("--proxy", f"/={a.address}", "--limit-rate", "1m")
    rss_before = server.rss_kib()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
        client.sendall(request_bytes("GET", "/download?209715200"))
        received, deadline = 0, time.monotonic() + 2.0
        while time.monotonic() < deadline:
            chunk = client.recv(1 << 20)
            assert chunk
            received += len(chunk)
        grown = server.rss_kib() - rss_before
    assert received < 4 * MIB, f"{received} bytes in 2 s at a limit of 1 MiB/s"
    assert grown < 32 * 1024, f"the proxy grew by {grown} KiB: it buffered the upstream's response"


# -- the application's queue (max_pending) -------------------------------------------------

GATED_APP = '''
import os, time

HERE = os.path.dirname(__file__)

def app(environ, start_response):
    if environ["PATH_INFO"] == "/hold":
        open(os.path.join(HERE, "started-%d" % os.getpid() + "-" + environ["QUERY_STRING"]), "w").close()
        deadline = time.monotonic() + 30
        while not os.path.exists(os.path.join(HERE, "release")) and time.monotonic() < deadline:
            time.sleep(0.02)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
'''


def admin_get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_for(probe, timeout, what):
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        pause(0.02)


def test_max_pending_refuses_at_once_and_reports_overload(serve):
    server = serve(GATED_APP, "--threads", "2", "--max-pending", "2", "--admin", "127.0.0.1:0")
    admin = int(server.wait_for_stderr(ADMIN.pattern).group(1))
    assert admin_get(admin, "/health")[0] == 200
    clients = []
    try:
        # two requests hold the two threads
        for i in range(2):
            clients.append(server.connect(timeout=30))
            clients[-1].send(request_bytes("GET", f"/hold?{i}"))
        wait_for(lambda: len([n for n in os.listdir(server.dir) if n.startswith("started-")]) == 2, 10,
                 "both threads busy")
        # four more: two may wait for a thread, the other two are refused at once
        later = []
        sent_at = time.monotonic()
        for i in range(2, 6):
            later.append(server.connect(timeout=30))
            later[-1].send(request_bytes("GET", f"/hold?{i}"))
        clients.extend(later)
        answered = []
        while len(answered) < 2:
            assert time.monotonic() - sent_at < 5, f"{len(answered)} of 4 answered at once"
            ready, _, _ = select.select([c.sock for c in later if c not in answered], [], [], 0.1)
            answered += [c for c in later if c.sock in ready]
        seconds = time.monotonic() - sent_at
        waiting = [c for c in later if c not in answered]
        for client in answered:
            response = client.read_response()
            assert response.status == 503, response
            assert response.header("Retry-After") == "1"
        assert seconds < 2.0, f"the refusals took {seconds:.2f} s"
        status, text = admin_get(admin, "/health")
        assert status == 503 and "overloaded" in text and "max_pending" in text, (status, text)
        metrics = admin_get(admin, "/metrics")[1]
        assert 'fastcore_limit_refused_total{reason="max_pending",dry_run="false"} 2' in metrics, metrics
        for client in clients[:2] + waiting:
            client.assert_open(0.05)  # the held and the waiting ones are still waiting
        (server.dir / "release").write_text("")
        for client in clients[:2] + waiting:
            assert client.read_response().status == 200
        wait_for(lambda: admin_get(admin, "/health")[0] == 200, 5, "/health ok again")
    finally:
        (server.dir / "release").write_text("")  # a failed test still lets the server stop
        for client in clients:
            client.close()


# -- the minimum request-body rate ---------------------------------------------------------

ECHO_LENGTH_APP = '''
def app(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d" % len(body)]
'''


def upload(server, total, piece, interval, limit_seconds):
    """Sends a body of `total` bytes as `piece` bytes every `interval` s; stops
    when the server answers. Returns (response, seconds, bytes sent)."""
    with server.connect(timeout=10) as client:
        head = request_bytes("POST", "/", [("Content-Length", str(total))])
        started = time.monotonic()
        client.send(head)
        sent = 0
        while sent < total and time.monotonic() - started < limit_seconds:
            ready, _, _ = select.select([client.sock], [], [], interval)
            if ready:
                break  # the server answered (or closed) before the whole body
            client.send(b"x" * min(piece, total - sent))
            sent += min(piece, total - sent)
        response = client.read_response("POST")
        return response, time.monotonic() - started, sent


def test_min_body_rate_cuts_a_trickling_upload(serve):
    server = serve(ECHO_LENGTH_APP, "--min-body-rate", "1000", "--min-body-rate-grace", "1",
                   "--body-timeout", "5", "--admin", "127.0.0.1:0")
    admin = int(server.wait_for_stderr(ADMIN.pattern).group(1))
    # 10 bytes every 0.2 s: each read comes well within body_timeout, so only the rate can end it
    response, seconds, sent = upload(server, 100000, 10, 0.2, 20)
    assert response.status == 408, response
    assert b"min_body_rate" in response.body
    assert seconds < 5.0, f"cut after {seconds:.1f} s ({sent} bytes): not before one body_timeout"
    metrics = admin_get(admin, "/metrics")[1]
    assert 'fastcore_limit_refused_total{reason="min_body_rate",dry_run="false"} 1' in metrics, metrics


def test_min_body_rate_lets_a_slow_steady_upload_complete(serve):
    server = serve(ECHO_LENGTH_APP, "--min-body-rate", "1000", "--min-body-rate-grace", "1",
                   "--body-timeout", "5")
    # 3000 bytes every 0.25 s (12 kB/s) for 2.5 s: slow, but above the rate
    response, seconds, sent = upload(server, 30000, 3000, 0.25, 20)
    assert sent == 30000
    assert response.status == 200, response
    assert response.body == b"30000"
