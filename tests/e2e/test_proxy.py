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
    assert headers["x-real-ip"] == "127.0.0.1"
    assert headers["host"] == "127.0.0.1"  # the client's (proxy_host pass)
    assert document["path"] == "/headers?q=1"


def test_proxy_replaces_forwarding_fields_of_an_untrusted_client(upstreams, proxy):
    (a,) = upstreams("a")
    server = proxy("--proxy", f"/={a.address}", "--forwarded-allow-ips", "10.0.0.0/8")
    document = get(server, "/headers", {"X-Forwarded-For": "6.6.6.6", "X-Real-IP": "6.6.6.6",
                                        "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil"}).json()
    headers = {name.lower(): value for name, value in document["headers"]}
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-real-ip"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] != "evil"


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


def test_proxy_chunked_and_head_responses(upstreams, proxy):
    (a,) = upstreams("a")
    server = proxy("--proxy", f"/={a.address}")
    response = get(server, "/chunked?100000")
    assert response.content == (bytes(range(256)) * 256 * 2)[:100000]
    head = requests.head(f"http://127.0.0.1:{server.port}/download?12345", timeout=10)
    assert head.status_code == 200 and head.headers["Content-Length"] == "12345" and head.content == b""
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
