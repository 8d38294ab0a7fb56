"""HTTP/1.1 behaviour of `fastcore serve` seen from real clients: keep-alive,
pipelining, HEAD, HTTP/1.0, chunked uploads, 100-continue, body limits, the
invalid half of the parser corpus, curl and requests."""
import hashlib
import http.client
import json
import pathlib
import random
import re
import shutil
import subprocess
import time
from email.utils import parsedate_to_datetime

import pytest
import requests

CORPUS = pathlib.Path(__file__).resolve().parent.parent / "corpus"
CORPUS_MAX_BODY = "16m"  # tests/corpus/make_corpus.py: MAX_BODY = 16 MiB

ECHO_APP = '''
def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/port":
        body = environ["REMOTE_PORT"].encode()
    elif path == "/gen":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (part for part in [b"no ", b"length ", b"given"])
    elif environ["REQUEST_METHOD"] == "POST":
        body = environ["wsgi.input"].read()
        kind = environ.get("CONTENT_TYPE") or "application/octet-stream"
        start_response("200 OK", [("Content-Type", kind), ("Content-Length", str(len(body)))])
        return [body]
    else:
        body = path.encode("latin-1")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def test_keepalive_hundred_requests_share_one_connection(serve):
    server = serve(ECHO_APP)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        ports = set()
        for _ in range(100):
            connection.request("GET", "/port")
            response = connection.getresponse()
            assert response.status == 200
            ports.add(response.read())
            assert not response.will_close
        assert len(ports) == 1
        assert int(ports.pop()) == connection.sock.getsockname()[1]
    finally:
        connection.close()


def test_date_header_is_an_imf_fixdate_of_now(serve):
    # RFC 9110 5.6.7: "Sun, 06 Nov 1994 08:49:37 GMT", the server's clock, UTC
    server = serve(ECHO_APP)
    before = time.time()
    response = requests.get(f"{server.url}/x", timeout=10)
    after = time.time()
    date = response.headers["Date"]
    assert re.fullmatch(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                        r"\d{4} \d\d:\d\d:\d\d GMT", date), date
    stamp = parsedate_to_datetime(date).timestamp()
    assert int(before) - 1 <= stamp <= after + 1, (date, before, after)


def test_pipelining_twenty_requests_answered_in_order(serve, make_request):
    server = serve(ECHO_APP)
    with server.connect() as client:
        client.send(b"".join(make_request("GET", f"/item/{i}") for i in range(20)))
        for i in range(20):
            response = client.read_response()
            assert response.status == 200
            assert response.body == f"/item/{i}".encode()


def test_head_has_length_but_no_body(serve, make_request):
    server = serve(ECHO_APP)
    with server.connect() as client:
        client.send(make_request("HEAD", "/twelve-bytes") + make_request("GET", "/after"))
        head = client.read_response("HEAD")
        assert head.status == 200
        assert head.header("Content-Length") == str(len("/twelve-bytes"))
        # The next response must start right where the head ended.
        after = client.read_response()
        assert after.status == 200
        assert after.body == b"/after"


@pytest.mark.parametrize("path", ["/fixed", "/gen"])
def test_http10_response_framed_then_closed(serve, make_request, path):
    server = serve(ECHO_APP)
    with server.connect() as client:
        client.send(make_request("GET", path, version="HTTP/1.0", host=False))
        response = client.read_response()
        assert response.status == 200
        assert response.header("Transfer-Encoding") is None  # HTTP/1.0 has no chunked
        assert response.body == (b"no length given" if path == "/gen" else b"/fixed")
        assert client.read_until_closed() == b""


def test_http10_keepalive_stays_open(serve, make_request):
    server = serve(ECHO_APP)
    with server.connect() as client:
        for i in range(3):
            client.send(make_request("GET", f"/ka/{i}", headers=[("Connection", "keep-alive")],
                                     version="HTTP/1.0", host=False))
            response = client.read_response()
            assert response.status == 200
            assert response.body == f"/ka/{i}".encode()
            assert response.header("Content-Length") == str(len(response.body))
            assert (response.header("Connection") or "").lower() == "keep-alive"
        client.assert_open()


@pytest.mark.parametrize("buffer_args", [[], ["--body-buffer-size", "64k"]], ids=["memory", "spooled"])
def test_chunked_upload_one_mib_echoed_intact(serve, make_request, buffer_args):
    server = serve(ECHO_APP, *buffer_args)
    rng = random.Random(1)
    body = rng.randbytes(1024 * 1024)
    sizes = [1, 7, 100, 4096, 65536, 13, 333, 16384, 2, 50000]
    with server.connect() as client:
        client.send(make_request("POST", "/upload", headers=[("Transfer-Encoding", "chunked")]))
        offset, turn = 0, 0
        while offset < len(body):
            chunk = body[offset:offset + sizes[turn % len(sizes)]]
            client.send(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            offset += len(chunk)
            turn += 1
        client.send(b"0\r\n\r\n")
        response = client.read_response()
        assert response.status == 200
        assert len(response.body) == len(body)
        assert hashlib.sha256(response.body).hexdigest() == hashlib.sha256(body).hexdigest()


def test_expect_continue_interim_before_body(serve, make_request):
    server = serve(ECHO_APP)
    with server.connect() as client:
        client.send(make_request("POST", "/c", headers=[("Content-Length", "11"),
                                                        ("Expect", "100-continue")]))
        version, status, reason, _ = client.read_head()
        assert (version, status) == ("HTTP/1.1", 100)
        client.send(b"hello world")
        response = client.read_response()
        assert response.status == 200
        assert response.body == b"hello world"


def test_max_body_declared_length_refused_before_body(serve, make_request):
    server = serve(ECHO_APP, "--max-body", "1k")
    with server.connect() as client:
        client.send(make_request("POST", "/big", headers=[("Content-Length", "2048")]))
        response = client.read_response()  # no body byte was sent
        assert response.status == 413
        assert client.read_until_closed() == b""


INVALID = sorted(CORPUS.glob("invalid/*.http"))


@pytest.fixture(scope="module")
def corpus_server(serve_shared):
    # The limits the corpus was written for (make_corpus.py), stated explicitly.
    return serve_shared(ECHO_APP, "--max-body", CORPUS_MAX_BODY)


@pytest.mark.parametrize("case", INVALID, ids=[p.stem for p in INVALID])
def test_parser_corpus_invalid_answered_then_closed(corpus_server, case):
    expected = json.loads(case.with_suffix(".json").read_text())["status"]
    with corpus_server.connect() as client:
        client.send(case.read_bytes())
        response = client.read_response()
        assert response.status == expected
        assert response.header("Connection") == "close"
        assert re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", response.header("Date") or "")
        assert client.read_until_closed() == b""


def test_curl_get_and_post(serve):
    curl = shutil.which("curl")
    assert curl, "curl is a test dependency and must be installed"
    server = serve(ECHO_APP)
    got = subprocess.run([curl, "-si", "--max-time", "10", f"{server.url}/from-curl"],
                         capture_output=True, timeout=20)
    assert got.returncode == 0, got.stderr
    assert got.stdout.startswith(b"HTTP/1.1 200 ")
    assert got.stdout.endswith(b"\r\n\r\n/from-curl")
    posted = subprocess.run([curl, "-si", "--max-time", "10", "-H", "Content-Type: text/plain",
                             "--data-binary", "posted by curl", f"{server.url}/post"],
                            capture_output=True, timeout=20)
    assert posted.returncode == 0, posted.stderr
    assert posted.stdout.startswith(b"HTTP/1.1 200 ")
    assert posted.stdout.endswith(b"\r\n\r\nposted by curl")


def test_requests_json_post(serve):
    server = serve(ECHO_APP)
    payload = {"name": "fastcore", "numbers": list(range(50)), "nested": {"ok": True}}
    with requests.Session() as session:
        response = session.post(f"{server.url}/json", json=payload, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == payload
