"""The reverse proxy end to end: `fastcore serve --proxy` in front of real
upstream processes (tests/e2e/upstream_server.py, a standard-library
HTTP/1.1 server, and fastcore itself), talked to by real clients.

Every wait is bounded; no timing assertion beyond generous bounds that a
broken proxy would miss by seconds."""
import collections
import hashlib
import json
import os
import pathlib
import select
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from tests.e2e.conftest import request_bytes
from tests.unit.test_proxy_discovery import dnsmasq  # noqa: F401 (a fixture)

HERE = pathlib.Path(__file__).resolve().parent
UPSTREAM = HERE / "upstream_server.py"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pause(seconds):
    select.select([], [], [], seconds)


class Upstream:
    """One upstream_server.py process."""

    def __init__(self, name, directory, where=None):
        self.name = name
        self.directory = directory
        self.where = where or str(free_port())
        self.proc = None
        self.start()

    @property
    def address(self):
        return self.where if self.where.startswith("unix:") else f"127.0.0.1:{self.where}"

    def start(self):
        self.proc = subprocess.Popen([sys.executable, str(UPSTREAM), self.name, self.where], cwd=self.directory,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        ready, _, _ = select.select([self.proc.stdout], [], [], 10)
        assert ready and self.proc.stdout.readline() == b"ready\n", f"upstream {self.name} did not start"

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()

    def get(self, path):
        host, port = "127.0.0.1", int(self.where)
        with socket.create_connection((host, port), timeout=5) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return data.split(b"\r\n\r\n", 1)[1]


@pytest.fixture
def upstreams(tmp_path):
    started = []

    def start(*names, unix=False):
        made = []
        for name in names:
            where = f"unix:{tmp_path / (name + '.sock')}" if unix else None
            upstream = Upstream(name, tmp_path, where)
            started.append(upstream)
            made.append(upstream)
        return made

    yield start
    for upstream in started:
        upstream.kill()


@pytest.fixture
def proxy(tmp_path, serve_files):
    """proxy(*args) -> a `fastcore serve` with no application (args carry --proxy)."""
    def start(*args, config=None):
        directory = tmp_path / f"proxy{free_port()}"
        directory.mkdir()
        if config is not None:
            (directory / "fastcore.toml").write_text(config)
            args = (*args, "--config", str(directory / "fastcore.toml"))
        return serve_files(directory, *args)
    return start


def get(server, target, headers=None, timeout=10):
    return requests.get(f"http://127.0.0.1:{server.port}{target}", headers=headers or {}, timeout=timeout)


# -- balancing ------------------------------------------------------------------------


def test_proxy_round_robin_spreads_evenly(upstreams, proxy):
    servers = upstreams("a", "b", "c")
    server = proxy("--proxy", "/=" + ",".join(s.address for s in servers))
    counts = collections.Counter()
    with requests.Session() as session:
        for _ in range(3000):
            response = session.get(f"http://127.0.0.1:{server.port}/id", timeout=10)
            assert response.status_code == 200
            counts[response.text] += 1
    assert set(counts) == {"a", "b", "c"}
    for name, count in counts.items():
        assert abs(count - 1000) <= 50, counts


def test_proxy_weights_from_config_table(upstreams, proxy):
    a, b = upstreams("a", "b")
    server = proxy(config=f'''
[[proxy]]
prefix = "/"
name = "app"
servers = [{{ address = "{a.address}", weight = 3 }}, "{b.address}"]
''')
    counts = collections.Counter(get(server, "/id").text for _ in range(400))
    assert counts["a"] == 300 and counts["b"] == 100, counts


def test_proxy_least_conn_avoids_a_busy_server(upstreams, proxy):
    """One slow request holds one server: every quick request meanwhile goes
    to the other (round robin would send half of them there)."""
    a, b = upstreams("a", "b")
    server = proxy("--proxy", f"/={a.address},{b.address}", "--proxy-balance", "least_conn")
    slow = threading.Thread(target=get, args=(server, "/sleep?2"))
    slow.start()
    pause(0.5)
    with requests.Session() as session:
        names = collections.Counter(session.get(f"http://127.0.0.1:{server.port}/id", timeout=10).text
                                    for _ in range(10))
    slow.join()
    assert len(names) == 1 and sum(names.values()) == 10, names


def test_proxy_hash_keeps_a_client_on_one_server(upstreams, proxy):
    servers = upstreams("a", "b", "c")
    server = proxy("--proxy", "/=" + ",".join(s.address for s in servers), "--proxy-balance", "hash",
                   "--proxy-hash-key", "header:X-User")
    seen = {}
    for user in range(60):
        names = {get(server, "/id", {"X-User": f"user{user}"}).text for _ in range(3)}
        assert len(names) == 1, f"user{user} went to {names}"
        seen[user] = names.pop()
    assert len(set(seen.values())) == 3


# -- headers ---------------------------------------------------------------------------


def test_proxy_removes_hop_by_hop_and_appends_forwarded_for(upstreams, proxy):
    (a,) = upstreams("a")
    server = proxy("--proxy", f"/={a.address}")
    with server.connect() as client:
        client.send(request_bytes("GET", "/headers?q=1", headers=[
            ("Connection", "keep-alive, X-Secret"), ("X-Secret", "hop"), ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"), ("Proxy-Authorization", "Basic x"), ("Upgrade", "h2c"),
            ("X-Forwarded-For", "10.1.1.1"), ("X-Custom", "end-to-end")]))
        response = client.read_response()
    assert response.status == 200
    document = json.loads(response.body)
    headers = {name.lower(): value for name, value in document["headers"]}
    for name in ("x-secret", "keep-alive", "te", "proxy-authorization", "upgrade"):
        assert name not in headers, (name, headers)
    assert headers["x-custom"] == "end-to-end"
    assert headers["x-forwarded-for"] == "10.1.1.1, 127.0.0.1"  # loopback is trusted by default
    assert headers["x-forwarded-proto"] == "http"
    # X-Real-IP is the client the core resolved: the trusted peer named it
    assert headers["x-real-ip"] == "10.1.1.1"
    assert headers["host"] == "127.0.0.1"  # the client's (proxy_host pass)
    assert document["path"] == "/headers?q=1"


def test_proxy_removes_hop_by_hop_fields_of_the_response(upstreams, proxy):
    """The upstream's Connection field and what it names stay on its hop;
    the rest of the head and the body reach the client, on a connection
    that stays open for the next request."""
    (a,) = upstreams("a")
    server = proxy("--proxy", f"/={a.address}")
    with server.connect() as client:
        for _ in range(2):
            client.send(request_bytes("GET", "/hop-response"))
            response = client.read_response()
            assert response.status == 200
            assert response.body == b"hop-by-hop response"
            names = {name.lower() for name, _ in response.headers}
            assert "x-upstream-secret" not in names and "keep-alive" not in names and "connection" not in names
            assert dict((name.lower(), value) for name, value in response.headers)["x-kept"] == "end-to-end"


def test_proxy_replaces_forwarding_fields_of_an_untrusted_client(upstreams, proxy):
    (a,) = upstreams("a")
    server = proxy("--proxy", f"/={a.address}", "--forwarded-allow-ips", "10.0.0.0/8")
    document = get(server, "/headers", {"X-Forwarded-For": "6.6.6.6", "X-Real-IP": "6.6.6.6",
                                        "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil",
                                        "Forwarded": "for=6.6.6.6"}).json()
    headers = {name.lower(): value for name, value in document["headers"]}
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-real-ip"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] != "evil"
    assert "forwarded" not in headers  # not passed on, even with proxy_forwarded off


@pytest.mark.parametrize("trusted", [True, False])
def test_proxy_rfc7239_forwarded_and_via(upstreams, proxy, trusted):
    (a,) = upstreams("a")
    server = proxy("--proxy", f"/={a.address}", "--proxy-forwarded", "--proxy-via",
                   *(() if trusted else ("--forwarded-allow-ips", "10.0.0.0/8")))
    response = get(server, "/headers", {"Forwarded": 'for=10.1.1.1;proto=https', "Via": "1.1 cdn",
                                        "X-Forwarded-Proto": "https"})
    assert response.status_code == 200
    fields = [(name.lower(), value) for name, value in response.json()["headers"]]
    forwarded = [value for name, value in fields if name == "forwarded"]
    ours = f'for=127.0.0.1;host="127.0.0.1:{server.port}"'
    if trusted:
        assert forwarded == [f"for=10.1.1.1;proto=https, {ours};proto=https"]
    else:
        assert forwarded == [f"{ours};proto=http"]
    # Via: the client's element first, ours appended (RFC 9110 7.6.3), both ways
    assert [value for name, value in fields if name == "via"] == ["1.1 cdn", "1.1 fastcore"]
    assert response.headers["Via"].endswith("1.1 fastcore")


def test_proxy_strip_prefix_and_fixed_host(upstreams, proxy):
    (a,) = upstreams("a")
    server = proxy(config=f'''
[[proxy]]
prefix = "/api"
servers = ["{a.address}"]
strip_prefix = true
host = "backend.internal"
''')
    document = get(server, "/api/headers?x=1").json()
    assert document["path"] == "/headers?x=1"
    assert dict((k.lower(), v) for k, v in document["headers"])["host"] == "backend.internal"
    assert get(server, "/other").status_code == 404  # not under the prefix, no application


# -- failures ----------------------------------------------------------------------------


def test_proxy_every_server_down_is_502(proxy):
    dead = [free_port(), free_port()]
    server = proxy("--proxy", "/=" + ",".join(f"127.0.0.1:{port}" for port in dead))
    response = get(server, "/id")
    assert response.status_code == 502
    assert "Bad Gateway" in response.text


def test_proxy_sleeping_server_is_504_at_read_timeout(upstreams, proxy):
    (a,) = upstreams("a")
    server = proxy("--proxy", f"/={a.address}", "--proxy-read-timeout", "0.5", "--proxy-retries", "0")
    started = time.monotonic()
    response = get(server, "/sleep?5")
    assert response.status_code == 504
    assert time.monotonic() - started < 4


def test_proxy_post_is_not_retried_after_its_body_was_sent(upstreams, proxy):
    a, b = upstreams("a", "b")
    server = proxy("--proxy", f"/={a.address},{b.address}")
    body = b"x" * (200 * 1024)  # past the replay buffer: once sent, it cannot go again
    response = requests.post(f"http://127.0.0.1:{server.port}/close-after-body", data=body, timeout=10)
    assert response.status_code == 502
    posts = [p for p in (a.directory / "a.posts", b.directory / "b.posts") if p.exists()]
    assert sum(len(p.read_text().split()) for p in posts) == 1, "the POST reached two servers"


def test_proxy_idempotent_get_is_retried_on_another_server(upstreams, proxy):
    a, b = upstreams("a", "b")
    server = proxy("--proxy", f"/={a.address},{b.address}", "--proxy-max-fails", "0")
    for _ in range(4):
        response = get(server, "/close-after-body")
        # both servers close without answering: the GET went to each once, then 502
        assert response.status_code == 502
    counts = [len((u.directory / f"{u.name}.posts").read_text().split()) for u in (a, b)]
    assert counts == [4, 4], counts


def test_proxy_killed_server_loses_no_request_and_comes_back(upstreams, proxy, tmp_path):
    a, b = upstreams("a", "b")
    server = proxy("--proxy", f"/={a.address},{b.address}", "--proxy-fail-timeout", "1",
                   "--proxy-health-path", "/health", "--proxy-health-interval", "0.2",
                   "--proxy-health-rise", "1")
    failures, served = 0, collections.Counter()
    deadline = time.monotonic() + 6
    killed = restarted = False
    started = time.monotonic()
    with requests.Session() as session:
        while time.monotonic() < deadline:
            elapsed = time.monotonic() - started
            if not killed and elapsed > 1:
                os.kill(a.proc.pid, signal.SIGKILL)
                killed = True
            if killed and not restarted and elapsed > 3:
                a.proc.wait()
                a.proc.stdout.close()
                a.start()
                restarted = True
                after_restart = collections.Counter()
            try:
                response = session.get(f"http://127.0.0.1:{server.port}/id", timeout=5)
                if response.status_code != 200:
                    failures += 1
                else:
                    served[response.text] += 1
                    if restarted:
                        after_restart[response.text] += 1
            except requests.RequestException:
                failures += 1
    assert failures == 0
    assert after_restart["a"] > 0, f"the restarted server got no traffic back: {after_restart}"


def test_proxy_response_over_a_slow_client_is_not_buffered(upstreams, proxy):
    (a,) = upstreams("a")
    server = proxy("--proxy", f"/={a.address}")
    rss_before = server.rss_kib()
    with socket.create_connection(("127.0.0.1", server.port)) as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        client.sendall(request_bytes("GET", "/download?209715200"))
        pause(2.0)  # the client reads nothing meanwhile
        assert server.rss_kib() - rss_before < 32 * 1024, "the proxy buffered the response"
        digest, size = hashlib.sha256(), 0
        head = b""
        while b"\r\n\r\n" not in head:
            head += client.recv(65536)
        head, rest = head.split(b"\r\n\r\n", 1)
        digest.update(rest)
        size += len(rest)
        while size < 209715200:
            chunk = client.recv(1 << 20)
            assert chunk
            digest.update(chunk)
            size += len(chunk)
    pattern = bytes(range(256)) * 256
    expected = hashlib.sha256(pattern * (209715200 // len(pattern))).hexdigest()
    assert digest.hexdigest() == expected


def test_proxy_large_upload_streams_intact(upstreams, proxy):
    (a,) = upstreams("a")
    server = proxy("--proxy", f"/={a.address}", "--max-body", "1g")
    chunk = os.urandom(1 << 20)
    digest = hashlib.sha256()
    for _ in range(200):
        digest.update(chunk)

    def body():
        for _ in range(200):
            yield chunk

    rss_before = server.rss_kib()
    response = requests.post(f"http://127.0.0.1:{server.port}/upload", data=body(), timeout=60)  # chunked
    assert response.status_code == 200
    assert response.text == f"{200 << 20} {digest.hexdigest()}"
    assert server.rss_kib() - rss_before < 32 * 1024


def test_proxy_upstream_that_resets_mid_upload_is_502_and_the_worker_goes_on(upstreams, proxy):
    """The upstream reads 1 MiB of a 16 MiB upload, then resets: the proxy's
    write fails, the exchange answers 502 (a POST whose body went out is not
    retried), the failure is logged, and the worker serves the next request."""
    (a,) = upstreams("a")
    server = proxy("--proxy", f"/={a.address}", "--max-body", "64m", "--proxy-retries", "2")
    size = 16 << 20
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=15)
    sent = {"bytes": 0}

    def send_body():
        chunk = b"x" * (1 << 16)
        try:
            while sent["bytes"] < size:
                sock.sendall(chunk)
                sent["bytes"] += len(chunk)
        except OSError:
            pass  # the proxy closed the connection after its 502

    try:
        sock.sendall(f"POST /reset-mid-body?{1 << 20} HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n"
                     .encode())
        sender = threading.Thread(target=send_body, daemon=True)
        sender.start()
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"closed without a response after {data!r}"
            data += chunk
        assert data.startswith(b"HTTP/1.1 502 "), data[:200]
        sender.join(15)
        assert not sender.is_alive()
    finally:
        sock.close()
    # which side of the socket meets the reset first is the kernel's timing:
    # the write (the upstream gone before answering) or the read (its RST)
    server.wait_for_stderr(r"WARNING\] proxy /: POST /reset-mid-body\?1048576 HTTP/1\.1: 502 127\.0\.0\.1:\d+: "
                           r"(the server closed the connection before answering|read: Connection reset by peer)")
    assert get(server, "/id").text == "a"
    assert a.get("/id") == b"a"


def test_proxy_chunked_and_head_responses(upstreams, proxy):
    (a,) = upstreams("a")
    server = proxy("--proxy", f"/={a.address}")
    response = get(server, "/chunked?100000")
    assert response.content == (bytes(range(256)) * 256 * 2)[:100000]
    head = requests.head(f"http://127.0.0.1:{server.port}/download?12345", timeout=10)
    assert head.status_code == 200 and head.headers["Content-Length"] == "12345" and head.content == b""
    with server.connect() as client:
        # a server that sends a body after its HEAD response: the body never
        # reaches the client (the GET after it on the same connection gets
        # its own answer), and that upstream connection is not reused
        client.send(request_bytes("HEAD", "/download?100&body-on-head"))
        assert client.read_response(method="HEAD").header("Content-Length") == "100"
        pause(0.3)
        client.send(request_bytes("GET", "/id"))
        second = client.read_response()
        assert (second.status, second.body) == (200, b"a")
    with server.connect() as client:  # HTTP/1.0 client, chunked upstream: close-delimited
        client.send(b"GET /chunked?5000 HTTP/1.0\r\nHost: x\r\n\r\n")
        data = client.read_until_closed()
    assert data.endswith((bytes(range(256)) * 20)[:5000]) and b"chunked" not in data.split(b"\r\n\r\n")[0].lower()


def test_proxy_unix_socket_server_and_fastcore_upstream(upstreams, proxy, serve):
    (u,) = upstreams("u", unix=True)
    app = serve('def app(environ, start_response):\n'
                '    start_response("200 OK", [("Content-Length", "9")])\n'
                '    return [b"fastcore!"]\n')
    server = proxy("--proxy", f"/u={u.address}", "--proxy", f"/f=127.0.0.1:{app.port}")
    assert get(server, "/u/id").text == "u"
    assert get(server, "/f/x").text == "fastcore!"


def test_proxy_reuses_upstream_connections(upstreams, proxy):
    (a,) = upstreams("a")
    server = proxy("--proxy", f"/={a.address}")
    errors = []

    def client():
        try:
            with requests.Session() as session:
                for _ in range(40):
                    assert session.get(f"http://127.0.0.1:{server.port}/id", timeout=10).text == "a"
        except Exception as e:  # reported below
            errors.append(e)

    before = int(a.get("/connections"))
    workers = [threading.Thread(target=client) for _ in range(32)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors
    opened = int(a.get("/connections")) - before - 1
    # 1,280 requests, at most 32 at once: the pool keeps them on at most as
    # many connections as were ever busy together
    assert opened <= 40, f"{opened} upstream connections for 1,280 requests"


def websocket_frame(payload, opcode=1):
    """A masked client frame (RFC 6455 5.2)."""
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        head = bytes([0x80 | opcode, 0x80 | size])
    elif size < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + size.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + size.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_frame(sock):
    def exactly(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            assert chunk, "the tunnel closed"
            data += chunk
        return data
    head = exactly(2)
    size = head[1] & 0x7F
    if size == 126:
        size = int.from_bytes(exactly(2), "big")
    elif size == 127:
        size = int.from_bytes(exactly(8), "big")
    return head[0] & 0x0F, exactly(size)


def websocket_handshake(sock):
    """Sends an RFC 6455 opening handshake; returns the response head."""
    sock.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    return head


def test_proxy_websocket_echo_through_the_tunnel(upstreams, proxy):
    (a,) = upstreams("a")
    server = proxy("--proxy", f"/={a.address}")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        head = websocket_handshake(sock)
        assert head.startswith(b"HTTP/1.1 101 "), head
        assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
        for payload in (b"hello", os.urandom(1000), os.urandom(300_000)):
            sock.sendall(websocket_frame(payload, opcode=2))
            assert read_frame(sock) == (2, payload)
        sock.sendall(websocket_frame(b"", opcode=8))
        assert read_frame(sock) == (8, b"")
        assert sock.recv(10) == b""  # the server closed: so does the tunnel


def test_proxy_tunnel_idle_timeout(upstreams, proxy):
    (a,) = upstreams("a")
    server = proxy("--proxy", f"/={a.address}", "--tunnel-idle-timeout", "0.5")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        head = websocket_handshake(sock)
        assert head.startswith(b"HTTP/1.1 101 ")
        sock.sendall(websocket_frame(b"ping"))
        assert read_frame(sock) == (1, b"ping")
        started = time.monotonic()
        assert sock.recv(10) == b""  # nothing either way: the proxy closes it
        assert time.monotonic() - started < 5


# -- the admin API ------------------------------------------------------------------------


def admin_port(server):
    return int(server.wait_for_stderr(r"fastcore: admin on http://127\.0\.0\.1:(\d+)").group(1))


def test_proxy_admin_named_pool_add_remove_and_metrics(upstreams, proxy):
    a, b, c = upstreams("a", "b", "c")
    server = proxy("--workers", "2", "--admin", "127.0.0.1:0", config=f'''
[[proxy]]
prefix = "/"
name = "app"
servers = ["{a.address}", "{b.address}"]
''')
    admin = f"http://127.0.0.1:{admin_port(server)}"
    errors, seen = [], collections.Counter()
    stop = threading.Event()
    phase = {"name": "before"}

    def load():
        with requests.Session() as session:
            while not stop.is_set():
                try:
                    response = session.get(f"http://127.0.0.1:{server.port}/id", timeout=5)
                    if response.status_code != 200:
                        errors.append(response.status_code)
                    seen[(phase["name"], response.text)] += 1
                except requests.RequestException as e:
                    errors.append(repr(e))

    clients = [threading.Thread(target=load) for _ in range(4)]
    for client in clients:
        client.start()
    try:
        pause(0.5)
        added = requests.post(f"{admin}/upstreams/app/servers", json={"address": c.address}, timeout=5)
        assert added.status_code == 201, added.text
        assert requests.post(f"{admin}/upstreams/app/servers", json={"address": c.address},
                             timeout=5).status_code == 409
        assert requests.post(f"{admin}/upstreams/app/servers", json={"address": "nope"}, timeout=5).status_code == 400
        assert requests.post(f"{admin}/upstreams/nope/servers", json={"address": c.address},
                             timeout=5).status_code == 404
        pause(1.0)
        removed = requests.delete(f"{admin}/upstreams/app/servers/{a.address}", timeout=5)
        assert removed.status_code == 202, removed.text
        pause(0.5)
        phase["name"] = "after"
        pause(1.0)
    finally:
        stop.set()
        for client in clients:
            client.join()
    assert not errors, errors[:5]
    assert seen[("before", "c")] > 0, seen
    assert seen[("after", "a")] == 0 and seen[("after", "b")] > 0 and seen[("after", "c")] > 0, seen
    deadline = time.monotonic() + 5
    while True:
        document = requests.get(f"{admin}/upstreams", timeout=5).json()
        (pool,) = document["upstreams"]
        servers = {s["address"]: s for s in pool["servers"]}
        if a.address not in servers or time.monotonic() > deadline:
            break
        pause(0.2)
    assert set(servers) == {b.address, c.address}, servers  # a drained, then dropped
    assert servers[c.address]["requests"] > 0 and servers[c.address]["state"] == "up"
    metrics = requests.get(f"{admin}/metrics", timeout=5).text
    assert f'fastcore_upstream_requests_total{{pool="app",server="{c.address}"}}' in metrics
    assert f'fastcore_upstream_up{{pool="app",server="{b.address}"}} 1' in metrics


def test_proxy_admin_pool_named_by_its_prefix(upstreams, proxy):
    a, b = upstreams("a", "b")
    server = proxy("--proxy", f"/api={a.address}", "--admin", "127.0.0.1:0")
    admin = f"http://127.0.0.1:{admin_port(server)}"
    assert requests.post(f"{admin}/upstreams/%2Fapi/servers", json={"address": b.address},
                         timeout=5).status_code == 201
    names = collections.Counter(get(server, "/api/id").text for _ in range(20))
    assert names["a"] > 0 and names["b"] > 0, names
    assert requests.delete(f"{admin}/upstreams/%2Fapi/servers/{b.address}", timeout=5).status_code == 202
    pause(0.3)
    assert {get(server, "/api/id").text for _ in range(10)} == {"a"}
    assert requests.get(f"{admin}/upstreams/%2Fapi", timeout=5).status_code == 404


# -- reload -------------------------------------------------------------------------------


def test_proxy_hup_applies_a_changed_server_list_without_failing_requests(upstreams, proxy):
    a, b = upstreams("a", "b")
    table = '[[proxy]]\nprefix = "/"\nname = "app"\nservers = ["{}"]\n'
    server = proxy("--workers", "2", config=table.format(a.address))
    config_file = next(server.dir.glob("fastcore.toml"))
    failures, served = 0, collections.Counter()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as slow:
        slow.sendall(request_bytes("GET", "/sleep?1.5"))  # in flight across the reload
        pause(0.3)
        config_file.write_text(table.format(b.address))
        os.kill(server.pid, signal.SIGHUP)
        deadline = time.monotonic() + 8
        with requests.Session() as session:
            while time.monotonic() < deadline and served["b"] < 50:
                try:
                    response = session.get(f"http://127.0.0.1:{server.port}/id", timeout=5)
                    if response.status_code == 200:
                        served[response.text] += 1
                    else:
                        failures += 1
                except requests.RequestException:
                    failures += 1
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"a"):
            chunk = slow.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"a"), answer
    assert failures == 0
    assert served["b"] >= 50, f"the new list never took over: {served}"
    # once the new workers serve, the old list is gone
    assert {get(server, "/id").text for _ in range(10)} == {"b"}


def test_proxy_admin_adds_and_removes_a_dns_name(upstreams, proxy, tmp_path, dnsmasq):
    """POST a DNS name: every address it resolves to joins the pool (and
    follows its records from then on); DELETE it: they all drain."""
    from tests.unit.test_proxy_discovery import write_hosts
    resolver, hosts, dns = dnsmasq
    port = free_port()
    first = Upstream("first", tmp_path, f"127.0.0.1:{port}")
    second = Upstream("second", tmp_path, f"127.0.0.2:{port}")  # another host, the same port
    (static,) = upstreams("static")
    try:
        write_hosts(hosts, [("127.0.0.1", "svc.test"), ("127.0.0.2", "svc.test")])
        dns.send_signal(signal.SIGHUP)
        server = proxy("--proxy", f"/={static.address}", "--admin", "127.0.0.1:0", "--resolver", resolver)
        admin = f"http://127.0.0.1:{admin_port(server)}"
        added = requests.post(f"{admin}/upstreams/%2F/servers", json={"address": f"svc.test:{port}"}, timeout=5)
        assert added.status_code == 201, added.text
        seen = collections.Counter()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (seen["first"] and seen["second"]):
            seen[get(server, "/id").text] += 1
        assert seen["first"] and seen["second"], f"the name's addresses never served: {seen}"
        removed = requests.delete(f"{admin}/upstreams/%2F/servers/svc.test:{port}", timeout=5)
        assert removed.status_code == 202, removed.text
        pause(0.3)
        assert {get(server, "/id").text for _ in range(12)} == {"static"}
    finally:
        first.kill()
        second.kill()
