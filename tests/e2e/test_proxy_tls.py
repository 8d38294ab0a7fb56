"""The reverse proxy to https:// upstream servers (#14): `fastcore serve
--proxy` in front of fastcore itself serving HTTPS, with certificates made
here by a test CA (the `openssl` command, as in test_tls.py).

What the upstream app says is the evidence: which SNI name it saw, how many
connections (distinct client ports) its requests came on, the sha256 of
what it received. Every wait is bounded."""
import hashlib
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from tests.e2e.conftest import start_server
from tests.e2e.certificates import make_ca, make_certificate

UPSTREAM_APP = '''
import hashlib

ports = set()
health_checks = []
BIG = bytes(range(256)) * (10 * 1024 * 1024 // 256)


def app(environ, start_response):
    path = environ["PATH_INFO"]
    ports.add(environ["REMOTE_PORT"])
    if path == "/upload":
        digest, size = hashlib.sha256(), 0
        while True:
            chunk = environ["wsgi.input"].read(65536)
            if not chunk:
                break
            digest.update(chunk)
            size += len(chunk)
        body = f"{size} {digest.hexdigest()}".encode()
    elif path == "/big":
        body = BIG
    elif path == "/connections":
        body = str(len(ports)).encode()
    elif path == "/client":
        body = str(environ.get("SSL_CLIENT_S_DN")).encode()
    elif path == "/session":
        body = environ["SSL_SESSION_RESUMED"].encode()
    elif path == "/health":
        health_checks.append(environ["REMOTE_PORT"])
        body = b"ok"
    elif path == "/health-checks":
        body = str(len(health_checks)).encode()
    else:
        body = f"{environ['SERVER_PORT']} {path} sni={environ.get('SSL_TLS_SNI')}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''

BIG_SHA256 = hashlib.sha256(bytes(range(256)) * (10 * 1024 * 1024 // 256)).hexdigest()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """The test CA and: `server` (localhost, 127.0.0.1), `api`
    (api.example.test), `other` (other.example.test only), all signed by
    it, `client` (a client certificate it signs) and `stranger`
    (127.0.0.1, self-signed)."""
    directory = tmp_path_factory.mktemp("upstream-certs")
    make_ca(directory, "fastcore proxy test CA")
    make_certificate(directory, "server", "upstream.localhost", ["DNS:localhost", "IP:127.0.0.1"])
    make_certificate(directory, "api", "api.example.test", ["DNS:api.example.test"])
    make_certificate(directory, "other", "other.example.test", ["DNS:other.example.test"])
    make_certificate(directory, "stranger", "stranger", ["DNS:localhost", "IP:127.0.0.1"], ca=False)
    make_certificate(directory, "client", "the proxy", [])
    return directory


@pytest.fixture
def tls(certs, tmp_path, no_fd_leak):
    """(https_upstream, plain_upstream, proxy): https_upstream(cert, *args,
    port=None, config=None) and plain_upstream() start fastcore serving
    UPSTREAM_APP; proxy(*args, config=None) a proxy with no application.
    All are stopped at teardown."""
    servers = []

    def directory():
        path = tmp_path / f"server{len(servers)}-{free_port()}"
        path.mkdir()
        (path / "app.py").write_text(UPSTREAM_APP)
        return path

    def started(where, app, args):
        server = start_server(where, app, args)
        servers.append(server)
        return server

    def https_upstream(cert="server", *args, port=None, config=None):
        where = directory()
        if config is not None:
            (where / "tls.toml").write_text(config)
            args = (*args, "--config", str(where / "tls.toml"))
        return started(where, "app:app", ["--bind", f"127.0.0.1:{port or 0}", "--certfile",
                                          str(certs / f"{cert}.pem"), "--keyfile", str(certs / f"{cert}.key"),
                                          *args])

    def plain_upstream():
        return started(directory(), "app:app", [])

    def proxy(*args, config=None):
        where = directory()
        if config is not None:
            (where / "fastcore.toml").write_text(config)
            args = (*args, "--config", str(where / "fastcore.toml"))
        return started(where, None, list(args))

    yield https_upstream, plain_upstream, proxy
    for server in servers:
        server.stop()


def trusting(certs):
    return ("--proxy-tls-ca-certs", str(certs / "ca.pem"))


def url(server, path):
    return f"http://127.0.0.1:{server.port}{path}"


def test_proxy_tls_get_and_post_through_a_verified_upstream(tls, certs):
    https_upstream, _, proxy = tls
    upstream = https_upstream()
    server = proxy("--proxy", f"/=https://127.0.0.1:{upstream.port}", *trusting(certs))
    response = requests.get(url(server, "/hello"), timeout=10)
    assert response.status_code == 200
    # the IP address is the name checked (the certificate's IP SAN); no SNI for an IP
    assert response.text == f"{upstream.port} /hello sni=None"
    body = os.urandom(300_000)
    response = requests.post(url(server, "/upload"), data=body, timeout=10)
    assert response.status_code == 200
    assert response.text == f"{len(body)} {hashlib.sha256(body).hexdigest()}"


def test_proxy_tls_keeps_upstream_connections_alive(tls, certs):
    https_upstream, _, proxy = tls
    upstream = https_upstream()
    server = proxy("--proxy", f"/=https://127.0.0.1:{upstream.port}", *trusting(certs))
    with requests.Session() as session:
        for number in range(200):
            response = session.get(url(server, f"/n{number}"), timeout=10)
            assert response.text == f"{upstream.port} /n{number} sni=None"
        # one client at a time: one kept connection carried them all
        assert int(session.get(url(server, "/connections"), timeout=10).text) <= 2


def test_proxy_tls_resumes_the_session_of_a_new_connection(tls, certs):
    https_upstream, _, proxy = tls
    upstream = https_upstream()
    # no kept connections: every request makes a new one, which offers the last session
    server = proxy("--proxy", f"/=https://127.0.0.1:{upstream.port}", *trusting(certs), "--proxy-keepalive", "0")
    answers = [requests.get(url(server, "/session"), timeout=10).text for _ in range(6)]
    # a TLS 1.3 ticket resumes once (RFC 8446 C.4), and the upstream
    # fastcore sends a new one on each resumed connection: only the first
    # handshake is a full one
    assert answers == ["Initial"] + ["Resumed"] * 5
    assert int(requests.get(url(server, "/connections"), timeout=10).text) == 7


def test_proxy_tls_health_checks_go_through_tls(tls, certs):
    https_upstream, _, proxy = tls
    good, stranger = https_upstream(), https_upstream("stranger")
    server = proxy("--proxy", f"/=https://127.0.0.1:{good.port},https://127.0.0.1:{stranger.port}",
                   *trusting(certs), "--proxy-health-path", "/health", "--proxy-health-interval", "0.2",
                   "--proxy-health-fall", "1")
    # the stranger fails its checks in the handshake: every request goes to the good one
    server.wait_for_stderr(rf"127\.0\.0\.1:{stranger.port}.*(fail|down)", timeout=10)
    for number in range(6):
        response = requests.get(url(server, f"/h{number}"), timeout=10)
        assert response.text.startswith(f"{good.port} ")
    # and the good one is checked again and again, through TLS
    deadline = time.monotonic() + 10
    while int(requests.get(url(server, "/health-checks"), timeout=10).text) < 3:
        assert time.monotonic() < deadline, "the TLS server got fewer than 3 health checks in 10 s"
        select.select([], [], [], 0.1)


def test_proxy_tls_refuses_a_certificate_its_cas_did_not_sign(tls, certs):
    https_upstream, _, proxy = tls
    upstream = https_upstream("stranger")
    server = proxy("--proxy", f"/=https://127.0.0.1:{upstream.port}", *trusting(certs))
    response = requests.get(url(server, "/x"), timeout=10)
    assert response.status_code == 502
    server.wait_for_stderr(r"TLS handshake: certificate verify failed: self-signed certificate")


def test_proxy_tls_verify_off_takes_any_certificate(tls, certs):
    https_upstream, _, proxy = tls
    upstream = https_upstream("stranger")
    server = proxy("--proxy", f"/=https://127.0.0.1:{upstream.port}", *trusting(certs), "--no-proxy-tls-verify")
    response = requests.get(url(server, "/x"), timeout=10)
    assert response.status_code == 200
    assert response.text == f"{upstream.port} /x sni=None"


def test_proxy_tls_system_store_does_not_trust_the_test_ca(tls):
    https_upstream, _, proxy = tls
    upstream = https_upstream()
    server = proxy("--proxy", f"/=https://127.0.0.1:{upstream.port}")  # no proxy_tls_ca_certs
    assert requests.get(url(server, "/x"), timeout=10).status_code == 502
    server.wait_for_stderr(r"certificate verify failed: unable to get local issuer certificate")


def test_proxy_tls_refuses_a_certificate_for_another_name(tls, certs):
    https_upstream, _, proxy = tls
    upstream = https_upstream("other")  # signed by the CA, for other.example.test only
    server = proxy("--proxy", f"/=https://127.0.0.1:{upstream.port}", *trusting(certs))
    assert requests.get(url(server, "/x"), timeout=10).status_code == 502
    server.wait_for_stderr(r"certificate verify failed: (hostname|IP address) mismatch")
    named = proxy("--proxy", f"/=https://127.0.0.1:{upstream.port}", *trusting(certs),
                  "--proxy-tls-server-name", "other.example.test")
    assert requests.get(url(named, "/x"), timeout=10).text == f"{upstream.port} /x sni=other.example.test"


def test_proxy_tls_server_name_picks_the_upstreams_certificate_by_sni(tls, certs):
    https_upstream, _, proxy = tls
    upstream = https_upstream(config=f'[[tls]]\nserver_names = ["api.example.test"]\n'
                                     f'certfile = "{certs}/api.pem"\nkeyfile = "{certs}/api.key"\n')
    config = (f'[[proxy]]\nprefix = "/api"\nservers = ["https://127.0.0.1:{upstream.port}"]\n'
              f'tls_server_name = "api.example.test"\ntls_ca_certs = "{certs}/ca.pem"\n'
              f'[[proxy]]\nprefix = "/local"\nservers = ["https://127.0.0.1:{upstream.port}"]\n'
              f'tls_server_name = "localhost"\ntls_ca_certs = "{certs}/ca.pem"\n'
              f'[[proxy]]\nprefix = "/wrong"\nservers = ["https://127.0.0.1:{upstream.port}"]\n'
              f'tls_server_name = "other.example.test"\ntls_ca_certs = "{certs}/ca.pem"\n')
    server = proxy(config=config)
    # api.example.test is only in the api certificate, localhost only in the default one
    assert requests.get(url(server, "/api/a"), timeout=10).text == f"{upstream.port} /api/a sni=api.example.test"
    assert requests.get(url(server, "/local/b"), timeout=10).text == f"{upstream.port} /local/b sni=localhost"
    # an unknown name gets the default certificate, which does not carry it
    assert requests.get(url(server, "/wrong/c"), timeout=10).status_code == 502
    server.wait_for_stderr(r"certificate verify failed: hostname mismatch")


def test_proxy_tls_mixed_pool_of_plain_and_tls_servers(tls, certs):
    https_upstream, plain_upstream, proxy = tls
    secure, plain = https_upstream(), plain_upstream()
    server = proxy("--proxy", f"/=https://127.0.0.1:{secure.port},http://127.0.0.1:{plain.port}",
                   *trusting(certs))
    seen = set()
    with requests.Session() as session:
        for number in range(20):
            response = session.get(url(server, f"/m{number}"), timeout=10)
            assert response.status_code == 200
            port, path, _ = response.text.split(" ")
            assert path == f"/m{number}"
            seen.add(int(port))
    assert seen == {secure.port, plain.port}


def test_proxy_tls_ten_mebibytes_each_way(tls, certs):
    https_upstream, _, proxy = tls
    upstream = https_upstream()
    server = proxy("--proxy", f"/=https://127.0.0.1:{upstream.port}", *trusting(certs))
    response = requests.get(url(server, "/big"), timeout=30)
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == BIG_SHA256
    body = os.urandom(10 * 1024 * 1024)
    response = requests.post(url(server, "/upload"), data=body, timeout=30)
    assert response.text == f"{len(body)} {hashlib.sha256(body).hexdigest()}"


def test_proxy_tls_dns_name_is_the_name_checked_and_sent(tls, certs):
    https_upstream, _, proxy = tls
    upstream = https_upstream()
    # localhost is resolved (every address a member); its certificate carries DNS:localhost
    server = proxy("--proxy", f"/=https://localhost:{upstream.port}", *trusting(certs))
    with requests.Session() as session:
        for number in range(4):
            response = session.get(url(server, f"/d{number}"), timeout=10)
            assert response.text == f"{upstream.port} /d{number} sni=localhost"


def test_proxy_tls_client_certificate_to_an_upstream_that_requires_one(tls, certs):
    https_upstream, _, proxy = tls
    upstream = https_upstream("server", "--cert-reqs", "required", "--ca-certs", str(certs / "ca.pem"))
    with_certificate = proxy("--proxy", f"/=https://127.0.0.1:{upstream.port}", *trusting(certs),
                             "--proxy-tls-certfile", str(certs / "client.pem"),
                             "--proxy-tls-keyfile", str(certs / "client.key"))
    response = requests.get(url(with_certificate, "/client"), timeout=10)
    assert response.status_code == 200
    assert "CN=the proxy" in response.text
    without = proxy("--proxy", f"/=https://127.0.0.1:{upstream.port}", *trusting(certs))
    assert requests.get(url(without, "/client"), timeout=10).status_code == 502


def test_proxy_tls_server_added_through_the_admin_api(tls, certs):
    https_upstream, plain_upstream, proxy = tls
    secure, plain = https_upstream(), plain_upstream()
    server = proxy("--admin", "127.0.0.1:0", *trusting(certs), config=f"""
[[proxy]]
prefix = "/"
name = "app"
servers = ["127.0.0.1:{plain.port}"]
""")
    admin_port = int(server.wait_for_stderr(r"fastcore: admin on http://127\.0\.0\.1:(\d+)").group(1))
    added = requests.post(f"http://127.0.0.1:{admin_port}/upstreams/app/servers",
                          json={"address": f"https://127.0.0.1:{secure.port}"}, timeout=5)
    assert added.status_code == 201, added.text
    seen = set()
    deadline = time.monotonic() + 10
    with requests.Session() as session:
        while secure.port not in seen:
            assert time.monotonic() < deadline, f"the added https:// server got no request: {seen}"
            response = session.get(url(server, "/a"), timeout=10)
            assert response.status_code == 200
            seen.add(int(response.text.split(" ")[0]))


def kill_hard(server):
    """SIGKILL a fastcore serve and its workers: nothing closes gracefully."""
    children = open(f"/proc/{server.pid}/task/{server.pid}/children").read().split()
    for pid in children:
        os.kill(int(pid), signal.SIGKILL)
    server.proc.kill()
    server.stop()


def test_proxy_tls_upstream_killed_and_restarted_fails_no_request(tls, certs):
    https_upstream, _, proxy = tls
    port = free_port()
    upstream = https_upstream(port=port)
    server = proxy("--proxy", f"/=https://127.0.0.1:{port}", *trusting(certs), "--proxy-max-fails", "0")
    with requests.Session() as session:
        for number in range(5):
            assert session.get(url(server, f"/before{number}"), timeout=10).status_code == 200
        for round in range(2):
            kill_hard(upstream)
            upstream = https_upstream(port=port)
            # the kept TLS connections are dead: found so (or retried), never a failed request
            for number in range(5):
                response = session.get(url(server, f"/after{round}-{number}"), timeout=10)
                assert response.status_code == 200, response.text
            # a body too big to be sent again: the pooled connection is peeked at first
            body = os.urandom(200_000)
            response = session.post(url(server, "/upload"), data=body, timeout=10)
            assert response.text == f"{len(body)} {hashlib.sha256(body).hexdigest()}"
    assert " 502 " not in server.stderr_text()


def test_proxy_tls_bad_ca_file_is_a_one_line_error(tls, tmp_path):
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("nothing here\n")
    result = subprocess.run([sys.executable, "-m", "fastcore", "serve", "--bind", "127.0.0.1:0", "--proxy",
                             "/=https://127.0.0.1:9", "--proxy-tls-ca-certs", str(not_pem)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert re.search(r"fastcore: error: .*proxy_tls_ca_certs: .*not\.pem holds no PEM certificate", result.stderr)
    assert "Traceback" not in result.stderr
