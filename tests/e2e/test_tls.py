"""TLS termination in the core (#14): real `fastcore serve` processes over
real TLS clients (curl, Python's ssl, requests, http.client), certificates
made here with the `openssl` command: a test CA, server certificates it
signs (one per SNI name), a client certificate it signs and one it does not.
"""
import asyncio
import hashlib
import json
import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import xml.etree.ElementTree as ElementTree

import pytest
import requests
from cryptography import x509
from cryptography.x509.oid import NameOID

from tests.e2e.certificates import make_ca, make_certificate
from fastcore.worker import kernel_tls_available
from tests.e2e.conftest import request_bytes, serve_error_line

ECHO_APP = '''
import hashlib, os, time

def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/slow":
        time.sleep(1.5)
    if path == "/upload":
        digest, size = hashlib.sha256(), 0
        while True:
            chunk = environ["wsgi.input"].read(65536)
            if not chunk:
                break
            digest.update(chunk)
            size += len(chunk)
        body = f"{size} {digest.hexdigest()}".encode()
    else:
        keys = ("wsgi.url_scheme", "HTTPS", "SSL_PROTOCOL", "SSL_CLIENT_VERIFY", "SSL_CLIENT_S_DN", "SSL_CLIENT_I_DN",
                "SSL_TLS_SNI", "REMOTE_PORT")
        body = "\\n".join(f"{key}={environ.get(key)}" for key in keys).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """The test CA and its certificates: `server` (localhost, 127.0.0.1),
    `api` (api.example.test), `shop` (*.shop.example.test), `renewed`
    (localhost again, another CN), `client` (signed) and `stranger`
    (self-signed)."""
    directory = tmp_path_factory.mktemp("certs")
    make_ca(directory, "fastcore test CA")
    make_certificate(directory, "server", "first.localhost", ["DNS:localhost", "IP:127.0.0.1"])
    make_certificate(directory, "renewed", "second.localhost", ["DNS:localhost", "IP:127.0.0.1"])
    make_certificate(directory, "api", "api.example.test", ["DNS:api.example.test"])
    make_certificate(directory, "shop", "shop.example.test", ["DNS:*.shop.example.test"])
    make_certificate(directory, "client", "alice", [], ca=True)
    make_certificate(directory, "stranger", "mallory", [], ca=False)
    return directory


def tls_args(certs, name="server"):
    return ["--certfile", str(certs / f"{name}.pem"), "--keyfile", str(certs / f"{name}.key")]


def client_context(certs, version=None, cert=None):
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    if version is not None:
        context.minimum_version = context.maximum_version = version
    if cert is not None:
        context.load_cert_chain(str(certs / f"{cert}.pem"), str(certs / f"{cert}.key"))
    return context


def tls_connect(server, context, server_hostname="localhost", port=None):
    sock = socket.create_connection(("127.0.0.1", port or server.port), timeout=10)
    try:
        return context.wrap_socket(sock, server_hostname=server_hostname)
    except BaseException:
        sock.close()
        raise


def read_response(sock):
    """(status, body) of one response with a Content-Length, from a TLS socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: *(\d+)", head, re.I).group(1))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed in the body"
        body += chunk
    return int(head.split()[1]), body[:length], body[length:]


def get(sock, target="/"):
    sock.sendall(request_bytes("GET", target))
    status, body, rest = read_response(sock)
    assert rest == b""
    return status, body


def fields(body):
    return dict(line.split("=", 1) for line in body.decode().splitlines())


def common_name(sock):
    cert = x509.load_der_x509_certificate(sock.getpeercert(binary_form=True))
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def test_tls_python_ssl_over_tls12_and_tls13(serve, certs):
    server = serve(ECHO_APP, *tls_args(certs))
    assert server.url.startswith("https://")
    for version, name in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
        with tls_connect(server, client_context(certs, version)) as sock:
            assert sock.version() == name
            assert sock.selected_alpn_protocol() is None  # none asked for
            status, body = get(sock)
            assert status == 200
            env = fields(body)
            assert env["wsgi.url_scheme"] == "https" and env["HTTPS"] == "on"
            assert env["SSL_PROTOCOL"] == name and env["SSL_CLIENT_VERIFY"] == "NONE"
    context = client_context(certs)
    context.set_alpn_protocols(["h2", "http/1.1"])
    with tls_connect(server, context) as sock:
        assert sock.selected_alpn_protocol() == "http/1.1"


def test_tls_curl_and_requests(serve, certs):
    server = serve(ECHO_APP, *tls_args(certs))
    url = f"https://localhost:{server.port}/"
    for flags, name in ((["--tlsv1.2", "--tls-max", "1.2"], "TLSv1.2"), (["--tlsv1.3"], "TLSv1.3")):
        out = subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", str(certs / "ca.pem"),
                              "--resolve", f"localhost:{server.port}:127.0.0.1", *flags, url],
                             capture_output=True, text=True, timeout=20)
        assert out.returncode == 0, out.stderr
        assert f"SSL_PROTOCOL={name}" in out.stdout and "wsgi.url_scheme=https" in out.stdout
    response = requests.get(f"https://127.0.0.1:{server.port}/", verify=str(certs / "ca.pem"), timeout=10)
    assert response.status_code == 200 and fields(response.content)["wsgi.url_scheme"] == "https"


def test_tls11_refused_at_the_defaults_and_tls12_with_min_13(serve, certs):
    server = serve(ECHO_APP, *tls_args(certs))
    old = client_context(certs, ssl.TLSVersion.TLSv1_1)
    old.set_ciphers("DEFAULT:@SECLEVEL=0")  # the client would offer TLS 1.1; the server must not take it
    with pytest.raises(ssl.SSLError):
        tls_connect(server, old).close()
    strict = serve(ECHO_APP, *tls_args(certs), "--ssl-min-version", "1.3")
    with pytest.raises(ssl.SSLError):
        tls_connect(strict, client_context(certs, ssl.TLSVersion.TLSv1_2)).close()
    with tls_connect(strict, client_context(certs)) as sock:
        assert sock.version() == "TLSv1.3"


def sslscan_weaknesses(port, directory):
    """What Debian's sslscan finds weak on 127.0.0.1:port: protocols other
    than TLS 1.2 and 1.3, TLS 1.2 suites that are not forward-secret AEAD
    (ECDHE with GCM or ChaCha20-Poly1305), suites under 128 bits, client
    renegotiation, heartbleed."""
    report = directory / f"sslscan-{port}.xml"
    subprocess.run(["sslscan", "--no-colour", f"--xml={report}", f"127.0.0.1:{port}"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    test = ElementTree.parse(report).getroot().find("ssltest")
    assert test is not None, report.read_text()
    weak = [f"{p.get('type')} {p.get('version')} enabled" for p in test.iter("protocol")
            if p.get("enabled") == "1" and (p.get("type"), p.get("version")) not in (("tls", "1.2"), ("tls", "1.3"))]
    ciphers = list(test.iter("cipher"))
    assert ciphers, "sslscan saw no cipher suite at all"
    for cipher in ciphers:
        name, version, bits = cipher.get("cipher"), cipher.get("sslversion"), int(cipher.get("bits"))
        if bits < 128 or (version == "TLSv1.2" and not (name.startswith("ECDHE-") and
                                                        ("-GCM-" in name or "CHACHA20" in name))):
            weak.append(f"{version} {name} ({bits} bits)")
    weak += ["client renegotiation" for r in test.iter("renegotiation") if r.get("supported") == "1"]
    weak += [f"heartbleed on {h.get('sslversion')}" for h in test.iter("heartbleed") if h.get("vulnerable") == "1"]
    return weak


def test_sslscan_finds_nothing_weak_at_the_defaults(serve, certs, tmp_path):
    if shutil.which("sslscan") is None:
        pytest.skip("sslscan is not installed (Debian package sslscan; .ci/run installs it)")
    server = serve(ECHO_APP, *tls_args(certs))
    assert sslscan_weaknesses(server.port, tmp_path) == []
    # the scan sees a weak suite when one is configured: the check can fail
    lax = serve(ECHO_APP, *tls_args(certs), "--ciphers", "ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES128-GCM-SHA256")
    assert sslscan_weaknesses(lax.port, tmp_path) == ["TLSv1.2 ECDHE-RSA-AES128-SHA (128 bits)"]


def test_sni_chooses_the_certificate(serve, certs):
    config = (f'certfile = "{certs}/server.pem"\nkeyfile = "{certs}/server.key"\n'
              f'[[tls]]\nserver_names = ["api.example.test"]\ncertfile = "{certs}/api.pem"\nkeyfile = "{certs}/api.key"\n'
              f'[[tls]]\nserver_names = ["*.shop.example.test"]\ncertfile = "{certs}/shop.pem"\n'
              f'keyfile = "{certs}/shop.key"\n')
    server = serve(ECHO_APP, "--config", "tls.toml", files={"tls.toml": config})
    for name, expected in (("api.example.test", "api.example.test"), ("eu.shop.example.test", "shop.example.test"),
                           ("localhost", "first.localhost"), ("other.example.test", "first.localhost")):
        context = client_context(certs)
        context.check_hostname = False  # the unknown name gets the default certificate
        with tls_connect(server, context, server_hostname=name) as sock:
            assert common_name(sock) == expected, name
            status, body = get(sock)
            assert status == 200 and fields(body)["SSL_TLS_SNI"] == name
    # the whole check, as a browser does it
    with tls_connect(server, client_context(certs), server_hostname="api.example.test") as sock:
        assert get(sock)[0] == 200


def test_mtls_accepts_a_signed_client_and_refuses_others(serve, certs):
    server = serve(ECHO_APP, *tls_args(certs), "--ca-certs", str(certs / "ca.pem"), "--cert-reqs", "required")
    with tls_connect(server, client_context(certs, cert="client")) as sock:
        status, body = get(sock)
        env = fields(body)
        assert status == 200 and env["SSL_CLIENT_VERIFY"] == "SUCCESS"
        assert env["SSL_CLIENT_S_DN"] == "CN=alice,O=fastcore tests"
        assert env["SSL_CLIENT_I_DN"] == "CN=fastcore test CA,O=fastcore tests"
    for cert in (None, "stranger"):
        # TLS 1.3: the client's handshake ends before the server has checked
        # its certificate; the refusal (an alert, then the close) comes next
        with pytest.raises((ssl.SSLError, ConnectionError, AssertionError)):
            with tls_connect(server, client_context(certs, cert=cert)) as sock:
                get(sock)
    # the reason of each refusal, in the error log
    server.wait_for_stderr(r"TLS handshake with 127\.0\.0\.1 failed: peer did not return a certificate")
    server.wait_for_stderr(r"TLS handshake with 127\.0\.0\.1 failed: certificate verify failed")
    response = subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", str(certs / "ca.pem"),
                               "--cert", str(certs / "client.pem"), "--key", str(certs / "client.key"),
                               f"https://127.0.0.1:{server.port}/"], capture_output=True, text=True, timeout=20)
    assert "SSL_CLIENT_S_DN=CN=alice,O=fastcore tests" in response.stdout, response.stderr


def test_optional_client_certificate(serve, certs):
    server = serve(ECHO_APP, *tls_args(certs), "--ca-certs", str(certs / "ca.pem"), "--cert-reqs", "optional")
    with tls_connect(server, client_context(certs)) as sock:
        assert fields(get(sock)[1])["SSL_CLIENT_VERIFY"] == "NONE"
    with tls_connect(server, client_context(certs, cert="client")) as sock:
        assert fields(get(sock)[1])["SSL_CLIENT_S_DN"] == "CN=alice,O=fastcore tests"


def test_hup_serves_a_new_certificate_while_an_old_connection_finishes(serve, certs, tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    for ext in ("pem", "key"):
        (live / f"site.{ext}").write_bytes((certs / f"server.{ext}").read_bytes())
    os.chmod(live / "site.key", 0o600)
    server = serve(ECHO_APP, "--certfile", str(live / "site.pem"), "--keyfile", str(live / "site.key"))
    old = tls_connect(server, client_context(certs))
    try:
        assert common_name(old) == "first.localhost"
        old.sendall(request_bytes("GET", "/slow"))  # in progress across the reload
        for ext in ("pem", "key"):
            (live / f"site.{ext}").write_bytes((certs / f"renewed.{ext}").read_bytes())
        os.kill(server.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while True:
            with tls_connect(server, client_context(certs)) as sock:
                if common_name(sock) == "second.localhost":
                    assert get(sock)[0] == 200
                    break
            assert time.monotonic() < deadline, server.stderr_text()
            time.sleep(0.05)
        status, body, _ = read_response(old)
        assert status == 200 and common_name(old) == "first.localhost"
    finally:
        old.close()


def test_a_half_finished_handshake_times_out(serve, certs):
    server = serve(ECHO_APP, *tls_args(certs), "--header-timeout", "1")
    hello = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    silent = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        hello.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello's first bytes, no more
        started = time.monotonic()
        for sock in (hello, silent):
            while True:
                try:
                    data = sock.recv(4096)
                except ConnectionResetError:
                    data = b""
                if not data:
                    break
        assert time.monotonic() - started < 8
        # and the server still serves
        with tls_connect(server, client_context(certs)) as sock:
            assert get(sock)[0] == 200
    finally:
        hello.close()
        silent.close()


def test_garbage_closes_only_its_own_connection(serve, certs):
    server = serve(ECHO_APP, *tls_args(certs))
    good = tls_connect(server, client_context(certs))
    garbage = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        assert get(good)[0] == 200
        garbage.sendall(bytes(range(256)) * 64)
        while True:
            try:
                if not garbage.recv(4096):
                    break
            except ConnectionResetError:
                break
        tls_bad = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        try:
            tls_bad.sendall(b"\x16\x03\x01\x00\x05hello" * 100)  # a handshake record of nonsense
            while True:
                try:
                    if not tls_bad.recv(4096):
                        break
                except ConnectionResetError:
                    break
        finally:
            tls_bad.close()
        for _ in range(3):
            assert get(good)[0] == 200  # the connection before it is untouched
    finally:
        good.close()
        garbage.close()


def test_plain_http_on_the_tls_port_is_answered_400(serve, certs):
    server = serve(ECHO_APP, *tls_args(certs))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request_bytes("GET", "/"))
        data = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"plain HTTP request was sent to the HTTPS port" in data
    out = subprocess.run(["curl", "-sS", "--max-time", "10", f"http://127.0.0.1:{server.port}/"],
                         capture_output=True, text=True, timeout=20)
    assert "plain HTTP request" in out.stdout


@pytest.mark.parametrize("ktls", [False, True], ids=["user-space", "ssl-ktls"])
def test_static_files_over_tls(serve_files, certs, tmp_path, ktls):
    """Files over TLS, read and encrypted a record at a time; with
    --ssl-ktls, sent with sendfile where the kernel takes the keys (its tls
    module), else the same as without it, after a warning at start."""
    site = tmp_path / "site"
    site.mkdir()
    small = os.urandom(3000)
    big = os.urandom(1 << 20)
    (site / "small.bin").write_bytes(small)
    (site / "big.bin").write_bytes(big)
    server = serve_files(site, *tls_args(certs), "--bind", "127.0.0.1:0", *(["--ssl-ktls"] if ktls else []))
    warned = "ssl_ktls: this kernel has no tls module" in server.stderr_text()
    assert warned == (ktls and not kernel_tls_available()), server.stderr_text()
    with requests.Session() as session:
        for name, data in (("small.bin", small), ("big.bin", big), ("small.bin", small)):
            response = session.get(f"https://127.0.0.1:{server.port}/{name}", verify=str(certs / "ca.pem"),
                                   timeout=20)
            assert response.status_code == 200
            assert hashlib.sha256(response.content).digest() == hashlib.sha256(data).digest()
        ranged = session.get(f"https://127.0.0.1:{server.port}/big.bin", headers={"Range": "bytes=100000-299999"},
                             verify=str(certs / "ca.pem"), timeout=20)
        assert ranged.status_code == 206 and ranged.content == big[100000:300000]


def test_a_10_mib_upload_to_a_wsgi_app(serve, certs):
    server = serve(ECHO_APP, *tls_args(certs))
    data = os.urandom(10 << 20)
    response = requests.post(f"https://127.0.0.1:{server.port}/upload", data=data, verify=str(certs / "ca.pem"),
                             timeout=60)
    assert response.status_code == 200
    assert response.text == f"{len(data)} {hashlib.sha256(data).hexdigest()}"


def test_keep_alive_many_requests_on_one_tls_connection(serve, certs):
    server = serve(ECHO_APP, *tls_args(certs))
    connection = http.client.HTTPSConnection("127.0.0.1", server.port, context=client_context(certs), timeout=10)
    try:
        ports = set()
        for i in range(300):
            connection.request("GET", f"/n{i}")
            response = connection.getresponse()
            assert response.status == 200
            ports.add(fields(response.read())["REMOTE_PORT"])
        assert len(ports) == 1  # one connection served them all
    finally:
        connection.close()


def read_ok_responses(sock, count):
    """Reads `count` pipelined 200 responses (with Content-Length) in order."""
    rest = b""
    for i in range(count):
        data = rest
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < int(
                re.search(rb"content-length: *(\d+)", data, re.I).group(1)):
            chunk = sock.recv(65536)
            assert chunk, f"closed after {i} responses"
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"content-length: *(\d+)", head, re.I).group(1))
        assert head.startswith(b"HTTP/1.1 200")
        rest = body[length:]


def test_pipelined_requests_in_one_tls_record(serve, certs):
    """Twenty requests in one record: OpenSSL holds what the first read did
    not take, and no epoll event announces it (fc_tls_pending)."""
    server = serve(ECHO_APP, *tls_args(certs))
    with tls_connect(server, client_context(certs)) as sock:
        sock.sendall(b"".join(request_bytes("GET", f"/p{i}") for i in range(20)))
        read_ok_responses(sock, 20)


def test_pipelined_requests_in_separate_tls_records(serve, certs):
    """Twenty requests, a record each, sent before any answer: the server reads
    ahead, so one read(2) takes several records, and OpenSSL holds the whole
    records it has not decrypted yet, which no epoll event announces and
    SSL_pending does not count (fc_tls_pending)."""
    server = serve(ECHO_APP, *tls_args(certs))
    with tls_connect(server, client_context(certs)) as sock:
        for i in range(20):
            sock.sendall(request_bytes("GET", f"/p{i}"))
        read_ok_responses(sock, 20)


def test_sessions_resume_across_workers(serve, certs):
    server = serve(ECHO_APP, *tls_args(certs), "--workers", "3")
    context = client_context(certs, ssl.TLSVersion.TLSv1_2)
    with tls_connect(server, context) as sock:
        get(sock)
        session = sock.session
    resumed = 0
    for _ in range(12):
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        with context.wrap_socket(raw, server_hostname="localhost", session=session) as sock:
            get(sock)
            resumed += sock.session_reused
    assert resumed == 12  # whichever worker took the connection knew the ticket


def test_tls13_resumption_brings_a_new_ticket(serve, certs):
    """A TLS 1.3 client uses a ticket once (RFC 8446 C.4), so each resumed
    handshake must bring it a new ticket: a client that always offers the
    latest one resumes every connection, each time with another ticket (and
    across workers, whose keys are shared)."""
    server = serve(ECHO_APP, *tls_args(certs), "--workers", "2")
    context = client_context(certs, ssl.TLSVersion.TLSv1_3)
    with tls_connect(server, context) as sock:
        get(sock)
        session = sock.session
    for i in range(8):
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        with context.wrap_socket(raw, server_hostname="localhost", session=session) as sock:
            get(sock)  # the ticket comes before the response
            assert sock.session_reused, f"connection {i + 2} made a full handshake"
            assert sock.session.id != session.id, f"connection {i + 2} resumed but got no new ticket"
            session = sock.session


def test_https_redirect_from_the_plain_listener(serve, certs):
    server = serve(ECHO_APP, *tls_args(certs), "--bind", "127.0.0.1:0", "--bind-tls", "127.0.0.1:0",
                   "--https-redirect", binds=2)
    plain, secure = server.urls
    assert plain.startswith("http://") and secure.startswith("https://")
    tls_port = int(secure.rsplit(":", 1)[1])
    response = requests.get(plain + "/a/b?c=d", allow_redirects=False, timeout=10)
    assert response.status_code == 301
    assert response.headers["Location"] == f"https://127.0.0.1:{tls_port}/a/b?c=d"
    followed = requests.get(plain + "/x", verify=str(certs / "ca.pem"), timeout=10)
    assert followed.status_code == 200 and fields(followed.content)["wsgi.url_scheme"] == "https"


def test_bad_tls_configuration_is_one_line(certs, tmp_path):
    (tmp_path / "app.py").write_text(ECHO_APP)
    readable = tmp_path / "readable.key"
    readable.write_bytes((certs / "server.key").read_bytes())
    os.chmod(readable, 0o644)
    cases = [
        (["--certfile", str(tmp_path / "missing.pem"), "--keyfile", str(certs / "server.key")],
         r"setting certfile: cannot read '.*missing\.pem': No such file or directory"),
        (["--certfile", str(certs / "server.pem"), "--keyfile", str(certs / "api.key")],
         r"setting keyfile: .*api\.key does not match the certificate in .*server\.pem"),
        (["--certfile", str(certs / "server.pem"), "--keyfile", str(readable)],
         r"setting keyfile: the private key '.*readable\.key' may be read by every user of this machine "
         r"\(mode 0644\)"),
        (["--certfile", str(certs / "server.pem")], r"setting certfile \(.*\): needs keyfile"),
        (["--certfile", str(certs / "server.pem"), "--keyfile", str(certs / "server.key"), "--cert-reqs",
          "required"], r"setting cert_reqs \(required\): needs ca_certs"),
    ]
    for args, pattern in cases:
        line = serve_error_line(tmp_path, "app:app", "--bind", "127.0.0.1:0", *args)
        assert re.search(pattern, line), line


def test_no_weak_protocol_or_cipher_at_the_defaults(serve, certs):
    """What sslscan would flag: suites without forward secrecy, CBC with
    SHA-1, and anything before TLS 1.2. A client offering only those is
    refused; the default suites (ECDHE with AEAD) are taken."""
    server = serve(ECHO_APP, *tls_args(certs))
    for suites in ("AES128-SHA", "AES256-GCM-SHA384", "ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA384",
                   "DHE-RSA-AES128-GCM-SHA256"):
        context = client_context(certs, ssl.TLSVersion.TLSv1_2)
        context.set_ciphers(suites + ":@SECLEVEL=0")
        with pytest.raises(ssl.SSLError):
            tls_connect(server, context).close()
    context = client_context(certs, ssl.TLSVersion.TLSv1_2)
    with tls_connect(server, context) as sock:
        name, version, _ = sock.cipher()
        assert version == "TLSv1.2" and name.startswith("ECDHE-RSA-") and ("GCM" in name or "CHACHA20" in name)
    # and the setting changes them
    chacha = serve(ECHO_APP, *tls_args(certs), "--ciphers", "ECDHE-RSA-CHACHA20-POLY1305")
    with tls_connect(chacha, client_context(certs, ssl.TLSVersion.TLSv1_2)) as sock:
        assert sock.cipher()[0] == "ECDHE-RSA-CHACHA20-POLY1305"


def test_hup_with_a_broken_certificate_keeps_the_running_one(serve, certs, tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    for ext in ("pem", "key"):
        (live / f"site.{ext}").write_bytes((certs / f"server.{ext}").read_bytes())
    os.chmod(live / "site.key", 0o600)
    server = serve(ECHO_APP, "--certfile", str(live / "site.pem"), "--keyfile", str(live / "site.key"))
    (live / "site.key").write_bytes((certs / "api.key").read_bytes())  # not the certificate's key
    os.kill(server.pid, signal.SIGHUP)
    server.wait_for_stderr(r"reload: keeping the current configuration: setting keyfile: .* does not match")
    for _ in range(3):
        with tls_connect(server, client_context(certs)) as sock:
            assert common_name(sock) == "first.localhost" and get(sock)[0] == 200


ASGI_APP = '''
import json

async def app(scope, receive, send):
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": scope["scheme"]})
        await send({"type": "websocket.close"})
        return
    if scope["type"] != "http":
        return
    tls = scope["extensions"].get("tls")
    body = json.dumps({"scheme": scope["scheme"], "tls": tls}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
'''


def test_asgi_scope_over_tls_with_a_client_certificate(serve, certs):
    server = serve(ASGI_APP, *tls_args(certs), "--ca-certs", str(certs / "ca.pem"), "--cert-reqs", "optional")
    with tls_connect(server, client_context(certs, ssl.TLSVersion.TLSv1_3, cert="client")) as sock:
        status, body = get(sock)
        scope = json.loads(body)
    assert status == 200 and scope["scheme"] == "https"
    tls = scope["tls"]
    assert tls["tls_version"] == 0x0304 and tls["cipher_suite"] in (0x1301, 0x1302, 0x1303)
    assert tls["client_cert_name"] == "CN=alice,O=fastcore tests" and tls["client_cert_error"] is None
    assert tls["client_cert_chain"] == [(certs / "client.pem").read_text()]
    assert tls["server_cert"] == (certs / "server.pem").read_text()
    with tls_connect(server, client_context(certs, ssl.TLSVersion.TLSv1_2)) as sock:
        tls = json.loads(get(sock)[1])["tls"]
    assert tls["tls_version"] == 0x0303 and tls["client_cert_chain"] == [] and tls["client_cert_name"] is None


def test_websocket_scope_over_tls_is_wss(serve, certs):
    # websockets' asyncio client: its sync client reads (in a thread) and
    # writes (in the caller's) one SSL object at once, which OpenSSL does not
    # allow; about 1 in 300 of its handshakes then hangs, against uvicorn too
    from websockets.asyncio.client import connect

    server = serve(ASGI_APP, *tls_args(certs))

    async def scheme():
        async with connect(f"wss://localhost:{server.port}/ws", ssl=client_context(certs), open_timeout=10) as ws:
            return await asyncio.wait_for(ws.recv(), 10)

    assert asyncio.run(scheme()) == "wss"


def test_ticket_keys_rotate(serve, certs):
    """--ssl-ticket-rotate 1: a ticket resumes at first, stops resuming once
    its key is two rotations old, and a new session resumes again."""
    server = serve(ECHO_APP, *tls_args(certs), "--ssl-ticket-rotate", "1", "--workers", "2")
    context = client_context(certs, ssl.TLSVersion.TLSv1_2)

    def new_session():
        with tls_connect(server, context) as sock:
            get(sock)
            return sock.session

    def resumes(session):
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        with context.wrap_socket(raw, server_hostname="localhost", session=session) as sock:
            get(sock)
            return sock.session_reused

    session = new_session()
    assert resumes(session)
    deadline = time.monotonic() + 15
    while resumes(session):
        assert time.monotonic() < deadline, "the ticket still resumes after many rotations"
        time.sleep(0.2)
    assert resumes(new_session())


def test_bandwidth_limit_over_tls(serve_files, certs, tmp_path):
    """--limit-rate counts what goes out in TLS records too: a file past
    limit_rate_after arrives whole, no faster than the limit lets it."""
    site = tmp_path / "site"
    site.mkdir()
    data = os.urandom(3 << 20)
    (site / "big.bin").write_bytes(data)
    server = serve_files(site, *tls_args(certs), "--bind", "127.0.0.1:0", "--limit-rate", "4m",
                         "--limit-rate-after", "1m")
    started = time.monotonic()
    response = requests.get(f"https://127.0.0.1:{server.port}/big.bin", verify=str(certs / "ca.pem"), timeout=30)
    seconds = time.monotonic() - started
    assert response.status_code == 200 and response.content == data
    assert seconds >= 0.4, f"2 MiB past the first at 4 MiB/s took {seconds:.2f} s"  # at least 0.5 s at the limit
