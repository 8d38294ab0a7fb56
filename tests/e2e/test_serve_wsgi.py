"""The WSGI side of `fastcore serve` (PEP 3333), seen from real sockets: the
environ, wsgi.input, wsgi.errors, start_response, write(), close(),
file_wrapper, streaming under a slow reader, timeouts and threads."""
import hashlib
import json
import random
import select
import time

import pytest

THREADS = pytest.mark.parametrize("threads", [1, 4], ids=["threads1", "threads4"])

# One application with a route per behaviour; it records what must be seen
# from outside (close() calls) in files of its own directory.
APP = r'''
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def record(name, text):
    with open(os.path.join(HERE, name), "a") as f:
        f.write(text + "\n")


def plain(start_response, body, status="200 OK"):
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


class Closing:
    def __init__(self, parts, name):
        self.parts = parts
        self.name = name

    def __iter__(self):
        return iter(self.parts)

    def close(self):
        record(self.name, "closed")


def endless(name):
    try:
        for _ in range(100000):  # bounded: ~20 minutes at most
            yield b"x" * 4096
            time.sleep(0.01)
    finally:
        record(name, "closed")


def environ_json(environ):
    keep = {k: v for k, v in environ.items() if isinstance(v, (str, bool, int, tuple))}
    keep["wsgi.errors"] = hasattr(environ["wsgi.errors"], "write")
    return json.dumps(keep).encode()


def lazy(start_response, parts):
    # a generator: start_response runs when the server first iterates it
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield from parts


def app(environ, start_response):
    path = environ["PATH_INFO"]
    method = environ["REQUEST_METHOD"]
    stream = environ["wsgi.input"]
    if path == "/environ":
        return plain(start_response, environ_json(environ))
    if path.startswith("/input/"):
        how = path[len("/input/"):]
        if how == "read-n":
            pieces = []
            while True:
                piece = stream.read(7)
                if not piece:
                    break
                pieces.append(piece)
        elif how == "read":
            pieces = [stream.read(), stream.read()]
        elif how == "readline":
            pieces = [stream.readline(), stream.readline(5), stream.readline(), stream.read()]
        elif how == "readlines":
            pieces = stream.readlines()
        elif how == "iter":
            pieces = list(stream)
        return plain(start_response, json.dumps([p.decode("latin-1") for p in pieces]).encode())
    if path == "/errors":
        environ["wsgi.errors"].write("app-wrote-this-to-wsgi-errors\n")
        environ["wsgi.errors"].flush()
        return plain(start_response, b"logged")
    if path == "/exc-info":
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("changed my mind")
        except ValueError:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain"),
                                                       ("Content-Length", "11")], sys.exc_info())
        return [b"chosen page"]
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written one, ")
        write(b"written two, ")
        return [b"returned ", b"three"]
    if path == "/lazy":
        return lazy(start_response, [b"started ", b"when ", b"iterated"])
    if path == "/lazy-empty":
        return lazy(start_response, [])
    if path == "/closing":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing([b"closing ", b"iterable"], "closing.log")
    if path == "/endless":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return endless("endless.log")
    if path == "/bad-header":
        value = {"lf": "a\nb", "crlf": "a\r\nSet-Cookie: evil=1"}[environ["QUERY_STRING"]]
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Injected", value)])
        return [b"must not be sent"]
    if path == "/raise":
        raise RuntimeError("secret-detail-of-the-failure")
    if path == "/file":
        f = open(os.path.join(HERE, "data.bin"), "rb")
        size = os.fstat(f.fileno()).st_size
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(size))])
        return environ["wsgi.file_wrapper"](f, 65536)
    if path == "/stream":
        total = int(environ["QUERY_STRING"])
        block = b"s" * 65536
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(total * len(block)))])
        return (block for _ in range(total))
    if path == "/slow":
        record("slow.log", "started")
        time.sleep(1)
        return plain(start_response, b"slow")
    if method == "POST":
        return plain(start_response, stream.read())
    return plain(start_response, path.encode("latin-1"))
'''

VALIDATED_APP = APP + r'''

from wsgiref.validate import validator


def raw(environ, start_response):
    if environ["PATH_INFO"] == "/generator":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (part for part in [b"gen", b"er", b"ated"])
    if environ["REQUEST_METHOD"] == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    body = environ["PATH_INFO"].encode("latin-1")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


checked = validator(raw)
'''


def poll_file(path, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        select.select([], [], [], 0.05)  # a bounded poll of the file, not a wait for the server
    return path.read_text() if path.exists() else ""


def environ_of(server, target="/environ", headers=(), **kwargs):
    response = server.request("GET", target, headers=headers, **kwargs)
    assert response.status == 200, response
    return json.loads(response.body)


@THREADS
def test_validator_get_post_head_generator_clean(serve, make_request, threads):
    server = serve(VALIDATED_APP, "--threads", str(threads), app="app:checked")
    with server.connect() as client:
        client.send(make_request("GET", "/plain"))
        assert (lambda r: (r.status, r.body))(client.read_response()) == (200, b"/plain")
        client.send(make_request("POST", "/post", headers=[("Content-Type", "text/plain")], body=b"payload"))
        assert (lambda r: (r.status, r.body))(client.read_response()) == (200, b"payload")
        client.send(make_request("HEAD", "/head"))
        head = client.read_response("HEAD")
        assert head.status == 200 and head.header("Content-Length") == "5"
        client.send(make_request("GET", "/generator"))
        assert (lambda r: (r.status, r.body))(client.read_response()) == (200, b"generated")
    # Stopping first: a validator complaint raised in __del__ reaches stderr too.
    assert server.stop() == 0
    assert "Traceback" not in server.stderr_text()
    assert "Error" not in server.stderr_text()


@THREADS
def test_environ_cgi_and_wsgi_keys(serve, make_request, threads):
    server = serve(APP, "--root-path", "/app", "--threads", str(threads))
    with server.connect() as client:
        client.send(make_request("GET", "/app/environ?a=1&b=%20two",
                                 headers=[("X-Multi", "first"), ("Accept", "*/*"), ("X-Multi", "second")]))
        response = client.read_response()
        assert response.status == 200
        environ = json.loads(response.body)
        client_port = client.sock.getsockname()[1]
    assert environ["REQUEST_METHOD"] == "GET"
    assert environ["SCRIPT_NAME"] == "/app"
    assert environ["PATH_INFO"] == "/environ"
    assert environ["QUERY_STRING"] == "a=1&b=%20two"
    assert environ["SERVER_NAME"] == "127.0.0.1"
    assert environ["SERVER_PORT"] == str(server.port)
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert environ["REMOTE_ADDR"] == "127.0.0.1"
    assert environ["REMOTE_PORT"] == str(client_port)
    assert environ["HTTP_HOST"] == "127.0.0.1"
    assert environ["HTTP_X_MULTI"] == "first, second"
    assert environ["HTTP_ACCEPT"] == "*/*"
    assert environ["wsgi.version"] == [1, 0]
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["wsgi.input_terminated"] is True
    assert environ["wsgi.multithread"] is (threads > 1)
    assert environ["wsgi.multiprocess"] is False
    assert environ["wsgi.run_once"] is False
    assert environ["wsgi.errors"] is True
    assert "CONTENT_LENGTH" not in environ or environ["CONTENT_LENGTH"] == ""


def test_environ_content_type_and_length_not_http_prefixed(serve):
    server = serve(APP.replace('if path == "/environ":', 'if path == "/environ" or method == "POST":'))
    response = server.request("POST", "/environ", headers=[("Content-Type", "application/x-thing")],
                              body=b"0123456789")
    environ = json.loads(response.body)
    assert environ["REQUEST_METHOD"] == "POST"
    assert environ["CONTENT_TYPE"] == "application/x-thing"
    assert environ["CONTENT_LENGTH"] == "10"
    assert "HTTP_CONTENT_TYPE" not in environ
    assert "HTTP_CONTENT_LENGTH" not in environ


@pytest.mark.parametrize("fields, expected", [
    ([("Content-Length", "005")], "5"),
    ([("Content-Length", "5"), ("Content-Length", "5")], "5"),
    ([("Content-Length", "5, 5")], 400),
], ids=["leading-zeros", "repeated-fields", "list"])
def test_environ_content_length_is_one_decimal(serve, fields, expected):
    # RFC 9110 8.6: a list may be refused or collapsed; never handed on as sent
    server = serve(APP.replace('if path == "/environ":', 'if path == "/environ" or method == "POST":'))
    response = server.request("POST", "/environ", headers=fields, body=b"01234")
    if expected == 400:
        assert response.status == 400
        return
    assert response.status == 200, response
    assert json.loads(response.body)["CONTENT_LENGTH"] == expected


def test_environ_connect_authority_form_ip_literal_reaches_the_app_like_a_name(serve):
    # RFC 9112 3.2.3: authority-form is uri-host ":" port, and uri-host includes IP literals
    server = serve(APP.replace('if path == "/environ":', 'if path == "/environ" or method == "CONNECT":'))
    for target in ("example.com:443", "[::1]:443", "[2001:db8::1]:8443"):
        response = server.request("CONNECT", target, headers=[("Host", target)], host=False)
        assert response.status == 200, (target, response)
        environ = json.loads(response.body)
        assert (environ["REQUEST_METHOD"], environ["RAW_URI"], environ["HTTP_HOST"]) == ("CONNECT", target, target)
    for target in ("[::1]", "[::1:443", "user@example.com:443"):
        assert server.request("CONNECT", target, headers=[("Host", "example.com")], host=False).status == 400


def test_environ_path_info_percent_decoded_as_latin1(serve):
    server = serve(APP.replace('if path == "/environ":', 'if path.startswith("/environ"):'))
    environ = environ_of(server, "/environ/caf%C3%A9/a%20b?q=%C3%A9")
    assert environ["PATH_INFO"] == "/environ/caf\xc3\xa9/a b"
    assert environ["QUERY_STRING"] == "q=%C3%A9"


def test_environ_root_path_split(serve):
    server = serve(APP.replace('if path == "/environ":', 'if path.startswith("/x"):'),
                   "--root-path", "/app")
    environ = environ_of(server, "/app/x")
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("/app", "/x")


@pytest.mark.parametrize("order", ["evil-first", "good-first"])
def test_environ_underscore_header_dropped(serve, order):
    server = serve(APP)
    fields = [("X_Forwarded_For", "evil"), ("X-Forwarded-For", "good")]
    if order == "good-first":
        fields.reverse()
    environ = environ_of(server, headers=fields)
    assert environ["HTTP_X_FORWARDED_FOR"] == "good"


BODY_LINES = b"".join(b"line %04d of the body, with some padding to make it longer\n" % i
                      for i in range(60)) + b"last line without a newline"


@THREADS
@pytest.mark.parametrize("buffer_args", [[], ["--body-buffer-size", "1k"]], ids=["memory", "spooled"])
@pytest.mark.parametrize("how", ["read-n", "read", "readline", "readlines", "iter"])
def test_input_read_methods(serve, make_request, threads, buffer_args, how):
    assert len(BODY_LINES) > 2048
    server = serve(APP, "--threads", str(threads), *buffer_args)
    response = server.request("POST", f"/input/{how}", body=BODY_LINES)
    assert response.status == 200, response
    pieces = [p.encode("latin-1") for p in json.loads(response.body)]
    assert b"".join(pieces) == BODY_LINES
    lines = BODY_LINES.splitlines(keepends=True)
    if how == "read-n":
        assert all(len(p) == 7 for p in pieces[:-1]) and 0 < len(pieces[-1]) <= 7
    elif how == "read":
        assert pieces == [BODY_LINES, b""]
    elif how == "readline":
        assert pieces[:3] == [lines[0], lines[1][:5], lines[1][5:]]
    else:
        assert pieces == lines


def test_input_chunked_body_read_methods(serve, make_request):
    server = serve(APP)
    with server.connect() as client:
        client.send(make_request("POST", "/input/readlines", headers=[("Transfer-Encoding", "chunked")]))
        for start in range(0, len(BODY_LINES), 100):
            piece = BODY_LINES[start:start + 100]
            client.send(b"%x\r\n" % len(piece) + piece + b"\r\n")
        client.send(b"0\r\n\r\n")
        response = client.read_response()
    assert [p.encode("latin-1") for p in json.loads(response.body)] == BODY_LINES.splitlines(keepends=True)


def test_errors_stream_reaches_stderr(serve):
    server = serve(APP)
    assert server.request("GET", "/errors").body == b"logged"
    server.wait_for_stderr("app-wrote-this-to-wsgi-errors")


def test_start_response_exc_info_before_body_replaces_response(serve, make_request):
    server = serve(APP)
    with server.connect() as client:
        client.send(make_request("GET", "/exc-info"))
        response = client.read_response()
        assert response.status == 503
        assert response.body == b"chosen page"
        client.send(make_request("GET", "/next"))
        assert client.read_response().body == b"/next"


@THREADS
def test_write_callable_then_iterable(serve, threads):
    server = serve(APP, "--threads", str(threads))
    response = server.request("GET", "/write")
    assert response.status == 200
    assert response.body == b"written one, written two, returned three"


@THREADS
def test_start_response_called_when_the_generator_is_first_iterated(serve, threads):
    """PEP 3333 lets a generator application call start_response on its
    first iteration (middlewares that wrap the body are written so)."""
    server = serve(APP, "--threads", str(threads))
    response = server.request("GET", "/lazy")
    assert response.status == 200
    assert response.body == b"started when iterated"
    response = server.request("GET", "/lazy-empty")
    assert response.status == 200 and response.body == b""


@THREADS
def test_close_called_after_normal_response(serve, threads):
    server = serve(APP, "--threads", str(threads))
    response = server.request("GET", "/closing")
    assert response.body == b"closing iterable"
    assert poll_file(server.dir / "closing.log", 5) == "closed\n"


@THREADS
def test_close_called_when_client_disconnects(serve, make_request, threads):
    server = serve(APP, "--threads", str(threads))
    with server.connect() as client:
        client.send(make_request("GET", "/endless"))
        version, status, _, _ = client.read_head()
        assert status == 200
        received = len(client.buffer)
        while received < 64 * 1024:
            received += len(client.sock.recv(65536))
    assert poll_file(server.dir / "endless.log", 5) == "closed\n"
    assert server.request("GET", "/alive").body == b"/alive"


@pytest.mark.parametrize("value", ["lf", "crlf"])
def test_header_with_newline_gives_500_and_connection_usable(serve, make_request, value):
    server = serve(APP)
    with server.connect() as client:
        client.send(make_request("GET", f"/bad-header?{value}"))
        response = client.read_response()
        assert response.status == 500
        assert response.header("Set-Cookie") is None
        assert response.header("X-Injected") is None
        assert b"must not be sent" not in response.body
        client.send(make_request("GET", "/next"))
        response = client.read_response()
        assert (response.status, response.body) == (200, b"/next")


@THREADS
def test_app_exception_gives_500_without_traceback_in_body(serve, make_request, threads):
    server = serve(APP, "--threads", str(threads))
    with server.connect() as client:
        client.send(make_request("GET", "/raise"))
        response = client.read_response()
    assert response.status == 500
    assert b"Traceback" not in response.body
    assert b"secret-detail-of-the-failure" not in response.body
    server.wait_for_stderr(r"Traceback \(most recent call last\)(.|\n)*RuntimeError: secret-detail-of-the-failure")
    assert server.request("GET", "/after").body == b"/after"


@THREADS
def test_file_wrapper_sends_exact_file(serve, threads):
    server = serve(APP, "--threads", str(threads))
    data = random.Random(5).randbytes(5 * 1024 * 1024)
    (server.dir / "data.bin").write_bytes(data)
    response = server.request("GET", "/file")
    assert response.status == 200
    assert response.header("Content-Length") == str(len(data))
    assert hashlib.sha256(response.body).hexdigest() == hashlib.sha256(data).hexdigest()


@THREADS
def test_stream_large_response_slow_reader_bounded_memory(serve, make_request, threads):
    server = serve(APP, "--threads", str(threads))
    assert server.request("GET", "/stream?1").status == 200  # warm up
    blocks = 800  # 800 x 64 KiB = 50 MiB
    expected = blocks * 65536
    start_rss = server.rss_kib()
    peak = start_rss
    deadline = time.monotonic() + 60
    with server.connect() as client:
        client.send(make_request("GET", f"/stream?{blocks}"))
        version, status, _, headers = client.read_head()
        assert status == 200
        received = len(client.buffer)
        reads = 0
        while received < expected:
            assert time.monotonic() < deadline, f"only {received} of {expected} bytes in 60 s"
            data = client.sock.recv(65536)
            assert data, f"connection closed after {received} of {expected} bytes"
            assert data.count(b"s") == len(data)
            received += len(data)
            reads += 1
            if reads % 25 == 0:
                peak = max(peak, server.rss_kib())
            time.sleep(0.001)  # the slow reader
    assert received == expected
    assert peak < start_rss + 32 * 1024, f"RSS grew from {start_rss} KiB to {peak} KiB"


def test_slowloris_header_timeout(serve):
    server = serve(APP, "--header-timeout", "2")
    trickle = b"X-Slow: " + b"a" * 200
    with server.connect() as client:
        started = time.monotonic()
        client.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        outcome = None
        for byte in trickle:
            ready, _, _ = select.select([client.sock], [], [], 0.3)
            if ready:
                try:
                    data = client.sock.recv(65536)
                except ConnectionResetError:
                    data = b""
                outcome = data
                break
            try:
                client.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                outcome = b""
                break
            if time.monotonic() - started > 6:
                break
        elapsed = time.monotonic() - started
    assert outcome is not None, "still open after 6 s of trickling"
    assert outcome == b"" or outcome.startswith(b"HTTP/1.1 408 "), outcome
    assert 1.5 < elapsed < 2 + 2


def test_keepalive_idle_timeout_closes(serve, make_request):
    server = serve(APP, "--keepalive-timeout", "1")
    with server.connect() as client:
        client.send(make_request("GET", "/once"))
        assert client.read_response().body == b"/once"
        started = time.monotonic()
        assert client.read_until_closed(timeout=5) == b""
        elapsed = time.monotonic() - started
    assert 0.5 < elapsed < 3


def test_threads_slow_request_does_not_block_fast_one(serve, make_request):
    server = serve(APP, "--threads", "4")
    with server.connect() as slow, server.connect() as fast:
        slow.send(make_request("GET", "/slow"))
        assert poll_file(server.dir / "slow.log", 5) == "started\n"  # the slow one holds a thread
        started = time.monotonic()
        fast.send(make_request("GET", "/fast"))
        response = fast.read_response()
        fast_elapsed = time.monotonic() - started
        assert response.body == b"/fast"
        assert slow.read_response().body == b"slow"
    assert fast_elapsed < 0.5


@THREADS
def test_echo_post_body(serve, threads):
    server = serve(APP, "--threads", str(threads))
    body = random.Random(3).randbytes(300 * 1024)
    response = server.request("POST", "/echo", body=body)
    assert response.status == 200
    assert response.body == body


def test_server_header_default_and_disabled(serve):
    with_header = serve(APP)
    assert with_header.request("GET", "/").header("Server", "").startswith("fastcore")
    without = serve(APP, "--no-server-header")
    assert without.request("GET", "/").header("Server") is None
