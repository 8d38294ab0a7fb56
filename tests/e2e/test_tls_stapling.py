"""OCSP stapling (--ssl-stapling, --ssl-stapling-file): fastcore fetches each
certificate's status from an OCSP responder on 127.0.0.1 (OpenSSL's own
responder code, `openssl ocsp -index`, behind a small HTTP front) and real
clients see it stapled: `openssl s_client -status` prints it, `curl
--cert-status` checks it."""
import http.server
import os
import re
import signal
import subprocess
import threading
import time

import pytest

from tests.e2e.certificates import make_ca, make_certificate, openssl
from tests.e2e.conftest import serve_error_line

APP = '''
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
'''

WAIT = 20.0  # seconds a staple may take to appear (a fetch, a tick of the arbiter)


class Responder:
    """An OCSP responder over HTTP on 127.0.0.1: each POSTed request is
    answered by `openssl ocsp` in responder mode over the index file, signed
    by `signer` (the CA itself, unless a test says otherwise). `answer_500`
    makes it fail; `requests` counts what it was asked."""

    def __init__(self, directory):
        self.directory = directory
        self.signer = "ca"
        self.answer_500 = False
        self.delay = 0.0
        self.release = threading.Event()    # ends a delayed answer early
        self.active = 0                     # connections being served (sockets open)
        self.requests = 0
        responder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                responder.requests += 1
                responder.release.wait(responder.delay)
                if responder.answer_500 or self.headers.get("Content-Type") != "application/ocsp-request":
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                answer = responder.answer(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/ocsp-response")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            def process_request_thread(self, request, client_address):
                responder.active += 1
                try:
                    super().process_request_thread(request, client_address)  # closes the socket
                finally:
                    responder.active -= 1

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ocsp"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, request, minutes=60):
        lock = threading.get_ident()
        request_file = self.directory / f"request-{lock}.der"
        response_file = self.directory / f"response-{lock}.der"
        request_file.write_bytes(request)
        openssl("ocsp", "-index", "index.txt", "-CA", "ca.pem", "-rsigner", f"{self.signer}.pem", "-rkey",
                f"{self.signer}.key", "-reqin", request_file.name, "-respout", response_file.name,
                "-nmin", str(minutes), cwd=self.directory)
        return response_file.read_bytes()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def index_line(directory, name, revoked=False):
    """The line of openssl's CA index for a certificate: V (valid) or R
    (revoked), its serial number."""
    serial = openssl("x509", "-in", f"{name}.pem", "-noout", "-serial", cwd=directory).stdout.decode()
    serial = serial.strip().split("=", 1)[1]
    if revoked:
        return f"R\t301231000000Z\t250101000000Z\t{serial}\tunknown\t/CN={name}\n"
    return f"V\t301231000000Z\t\t{serial}\tunknown\t/CN={name}\n"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """(directory, responder): the test CA; `good` and `revoked`
    (localhost), `api` (api.example.test), naming the responder in their
    Authority Information Access, each with the full chain in NAME-chain.pem;
    `bare` (no responder named); `other-ca`, a CA that signed none of them."""
    directory = tmp_path_factory.mktemp("ocsp")
    responder = Responder(directory)
    make_ca(directory, "fastcore stapling test CA")
    make_ca(directory, "another CA", name="other-ca")
    aia = [f"authorityInfoAccess=OCSP;URI:{responder.url}"]
    for name, sans in (("good", ["DNS:localhost"]), ("revoked", ["DNS:localhost"]),
                       ("api", ["DNS:api.example.test"])):
        make_certificate(directory, name, name, sans, extensions=aia)
    make_certificate(directory, "bare", "bare", ["DNS:localhost"])
    for name in ("good", "revoked", "api", "bare"):
        (directory / f"{name}-chain.pem").write_bytes((directory / f"{name}.pem").read_bytes() +
                                                      (directory / "ca.pem").read_bytes())
    (directory / "index.txt").write_text(index_line(directory, "good") + index_line(directory, "revoked", True) +
                                         index_line(directory, "api") + index_line(directory, "bare"))
    yield directory, responder
    responder.close()


@pytest.fixture
def responder(pki):
    directory, responder = pki
    responder.signer, responder.answer_500, responder.requests, responder.delay = "ca", False, 0, 0.0
    responder.release.clear()
    yield responder
    responder.release.set()  # a delayed answer still waiting ends now, and its socket closes
    deadline = time.monotonic() + 10
    while responder.active and time.monotonic() < deadline:
        time.sleep(0.02)


def tls_files(pki_dir, name):
    return ["--certfile", str(pki_dir / f"{name}-chain.pem"), "--keyfile", str(pki_dir / f"{name}.key")]


def stapled(server, servername="localhost"):
    """What `openssl s_client -status` says of the staple: the OCSP part of
    its output ("no response sent", or the response's text)."""
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{server.port}", "-servername",
                          servername, "-status"], input=b"", capture_output=True, timeout=20)
    text = out.stdout.decode("utf-8", "replace")
    assert "BEGIN CERTIFICATE" in text, text + out.stderr.decode()
    if "OCSP response: no response sent" in text:
        return "none"
    match = re.search(r"OCSP Response Data:.*?(?=\n---|\Z)", text, re.S)
    assert match, text
    return match.group(0)


def wait_stapled(server, servername="localhost"):
    deadline = time.monotonic() + WAIT
    while True:
        text = stapled(server, servername)
        if text != "none":
            return text
        assert time.monotonic() < deadline, f"nothing stapled in {WAIT} s:\n{server.stderr_text()}"
        time.sleep(0.2)


def curl_cert_status(pki_dir, server, servername="localhost", check=True):
    """curl --cert-status (check): the request fails unless a good staple
    came; without check, a plain HTTPS request."""
    return subprocess.run(["curl", "-sS", "--max-time", "10", *(["--cert-status"] if check else []),
                           "--cacert", str(pki_dir / "ca.pem"), "--resolve", f"{servername}:{server.port}:127.0.0.1",
                           f"https://{servername}:{server.port}/"], capture_output=True, text=True, timeout=30)


def test_a_fetched_response_is_stapled_by_every_worker(serve, pki, responder):
    pki_dir, _ = pki
    server = serve(APP, *tls_files(pki_dir, "good"), "--ssl-stapling", "--workers", "2")
    text = wait_stapled(server)
    assert "Cert Status: good" in text, text
    server.wait_for_stderr(r"stapling: OCSP response for .*good-chain\.pem from http://127\.0\.0\.1:\d+/ocsp: good")
    # every connection, whichever worker takes it, gets it; fetched once for all
    for _ in range(8):
        assert "Cert Status: good" in stapled(server)
    assert responder.requests == 1
    out = curl_cert_status(pki_dir, server)
    assert out.returncode == 0 and out.stdout == "ok", out.stderr


def test_without_stapling_nothing_is_stapled_and_curl_cert_status_fails(serve, pki, responder):
    pki_dir, _ = pki
    server = serve(APP, *tls_files(pki_dir, "good"))
    assert stapled(server) == "none"
    out = curl_cert_status(pki_dir, server)
    assert out.returncode == 91 and "No OCSP response received" in out.stderr, out.stderr  # CURLE_SSL_INVALIDCERTSTATUS
    assert responder.requests == 0


def test_a_revoked_certificate_is_stapled_as_revoked_and_logged(serve, pki, responder):
    pki_dir, _ = pki
    server = serve(APP, *tls_files(pki_dir, "revoked"), "--ssl-stapling")
    assert "Cert Status: revoked" in wait_stapled(server)
    server.wait_for_stderr(r"WARNING.*stapling: .* says the certificate in .*revoked-chain\.pem is REVOKED")
    out = curl_cert_status(pki_dir, server)
    assert out.returncode != 0 and "revo" in out.stderr.lower(), out.stderr


def test_a_response_not_signed_by_the_issuer_is_not_stapled(serve, pki, responder):
    pki_dir, _ = pki
    responder.signer = "other-ca"
    server = serve(APP, *tls_files(pki_dir, "good"), "--ssl-stapling")
    server.wait_for_stderr(r"stapling: no OCSP response for .*good-chain\.pem from http://127\.0\.0\.1:\d+/ocsp: "
                           r"its signature is not the issuer's", timeout=WAIT)
    assert stapled(server) == "none"
    out = curl_cert_status(pki_dir, server, check=False)  # serving goes on without a staple
    assert out.returncode == 0 and out.stdout == "ok", out.stderr


def test_a_failing_responder_is_tried_again_and_then_stapled(serve, pki, responder):
    pki_dir, _ = pki
    responder.answer_500 = True
    server = serve(APP, *tls_files(pki_dir, "good"), "--ssl-stapling", "--ssl-stapling-refresh", "1")
    server.wait_for_stderr(r"stapling: no OCSP response for .*: the responder answered HTTP 500 .*; nothing "
                           r"stapled, next try in 1s", timeout=WAIT)
    assert stapled(server) == "none"
    responder.answer_500 = False
    assert "Cert Status: good" in wait_stapled(server)
    assert responder.requests >= 2


def test_a_responder_slower_than_the_timeout_is_given_up_and_serving_goes_on(serve, pki, responder):
    pki_dir, _ = pki
    responder.delay = 3.0
    server = serve(APP, *tls_files(pki_dir, "good"), "--ssl-stapling", "--ssl-stapling-timeout", "0.5")
    server.wait_for_stderr(r"stapling: no OCSP response for .*good-chain\.pem from http://127\.0\.0\.1:\d+/ocsp: "
                           r"timed out; nothing stapled", timeout=WAIT)
    assert stapled(server) == "none"
    out = curl_cert_status(pki_dir, server, check=False)
    assert out.returncode == 0 and out.stdout == "ok", out.stderr


def test_a_responder_that_is_down_keeps_the_last_good_response(serve, pki, responder):
    pki_dir, _ = pki
    server = serve(APP, *tls_files(pki_dir, "good"), "--ssl-stapling", "--ssl-stapling-refresh", "1")
    assert "Cert Status: good" in wait_stapled(server)
    responder.answer_500 = True
    server.wait_for_stderr(r"the last response stays stapled until its nextUpdate", timeout=WAIT)
    assert "Cert Status: good" in stapled(server)


def test_sni_certificates_get_their_own_response(serve, pki, responder):
    pki_dir, _ = pki
    config = (f'ssl_stapling = true\n[[tls]]\nserver_names = ["api.example.test"]\n'
              f'certfile = "{pki_dir / "api-chain.pem"}"\nkeyfile = "{pki_dir / "api.key"}"\n')
    server = serve(APP, *tls_files(pki_dir, "revoked"), "--config", "stapling.toml",
                   files={"stapling.toml": config})
    assert "Cert Status: good" in wait_stapled(server, "api.example.test")
    assert "Cert Status: revoked" in wait_stapled(server, "localhost")
    out = curl_cert_status(pki_dir, server, "api.example.test")
    assert out.returncode == 0 and out.stdout == "ok", out.stderr


def make_response_file(pki_dir, responder, name, path):
    """A DER response for `name`, made as a CA would publish it."""
    openssl("ocsp", "-issuer", "ca.pem", "-cert", f"{name}.pem", "-no_nonce", "-reqout", f"{name}-request.der",
            cwd=pki_dir)
    path.write_bytes(responder.answer((pki_dir / f"{name}-request.der").read_bytes()))


def test_a_response_file_is_stapled_and_read_again_on_hup(serve, pki, responder, tmp_path):
    pki_dir, _ = pki
    response = tmp_path / "good.der"
    make_response_file(pki_dir, responder, "good", response)
    responder.requests = 0
    server = serve(APP, *tls_files(pki_dir, "good"), "--ssl-stapling-file", str(response))
    assert "Cert Status: good" in stapled(server)  # from the first handshake: nothing to wait for
    assert responder.requests == 0
    # a newer response in the file: the next generation of workers staples it
    first = re.search(r"This Update: (.*)", stapled(server)).group(1)
    time.sleep(1.1)
    make_response_file(pki_dir, responder, "good", response)
    os.kill(server.pid, signal.SIGHUP)
    deadline = time.monotonic() + WAIT
    while re.search(r"This Update: (.*)", stapled(server)).group(1) == first:
        assert time.monotonic() < deadline, server.stderr_text()
        time.sleep(0.2)


def test_stapling_configuration_errors_are_one_line(pki, responder, tmp_path):
    pki_dir, _ = pki
    (tmp_path / "app.py").write_text(APP)
    other = tmp_path / "other.der"
    make_response_file(pki_dir, responder, "api", other)
    cases = [
        # the issuer is not in the certificate file
        (["--certfile", str(pki_dir / "good.pem"), "--keyfile", str(pki_dir / "good.key"), "--ssl-stapling"],
         r"setting ssl_stapling: .*good\.pem holds no certificate of its issuer after the server's"),
        # no responder named, none given
        (tls_files(pki_dir, "bare") + ["--ssl-stapling"],
         r"setting ssl_stapling: the certificate in .*bare-chain\.pem names no http:// OCSP responder \(none\): "
         r"set ssl_stapling_responder"),
        # a response about another certificate
        (tls_files(pki_dir, "good") + ["--ssl-stapling-file", str(other)],
         r"setting ssl_stapling_file: '.*other\.der' is no OCSP response to staple to .*good-chain\.pem: it does "
         r"not name the certificate"),
        (tls_files(pki_dir, "good") + ["--ssl-stapling-file", str(tmp_path / "missing.der")],
         r"setting ssl_stapling_file: cannot read '.*missing\.der': No such file or directory"),
        (tls_files(pki_dir, "good") + ["--ssl-stapling-file", str(pki_dir / "good.pem")],
         r"setting ssl_stapling_file: .* is no OCSP response to staple to .*: not an OCSP response \(DER\)"),
        (["--ssl-stapling"], r"setting ssl_stapling: needs certfile and keyfile"),
        (tls_files(pki_dir, "good") + ["--ssl-stapling-responder", "https://127.0.0.1/"],
         r"setting ssl_stapling_responder \(--ssl-stapling-responder\): expected an http:// URL"),
    ]
    for args, pattern in cases:
        line = serve_error_line(tmp_path, "app:app", "--bind", "127.0.0.1:0", *args)
        assert re.search(pattern, line), line


def test_ssl_stapling_responder_replaces_the_certificates_own(serve, pki, responder):
    pki_dir, _ = pki
    server = serve(APP, *tls_files(pki_dir, "bare"), "--ssl-stapling", "--ssl-stapling-responder", responder.url)
    assert "Cert Status: good" in wait_stapled(server)


def test_a_reload_keeps_the_fetched_response_without_asking_again(serve, pki, responder):
    pki_dir, _ = pki
    server = serve(APP, *tls_files(pki_dir, "good"), "--ssl-stapling")
    assert "Cert Status: good" in wait_stapled(server)
    assert responder.requests == 1
    os.kill(server.pid, signal.SIGHUP)
    server.wait_for_stderr(r"reload done: generation 1 serving", timeout=WAIT)
    server.wait_for_stderr(r"worker \d+ exited", timeout=WAIT)  # the old generation is gone
    for _ in range(4):
        assert "Cert Status: good" in stapled(server)  # the new workers staple it from their first handshake
    assert responder.requests == 1
