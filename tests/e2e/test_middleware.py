"""The middleware chain through a real `fastcore serve`: the order of the
layers on real requests, options from the command line and from inline
tables, a bad entry refused in one line, and the shipped middlewares
(RequestID, Compress, ProxyFix) seen by real clients."""
import gzip
import json
import subprocess
import sys
import time
import zlib

import brotli
import requests

TAG_APP = '''
import json


class Tag:
    """Adds its name to environ["trail"] on the way in and a Trail header on the way out."""

    def __init__(self, app, name, suffix=""):
        self.app, self.name = app, name + suffix

    def __call__(self, environ, start_response):
        environ.setdefault("trail", []).append(self.name)

        def start(status, headers, exc_info=None):
            return start_response(status, headers + [("Trail", self.name)], exc_info)

        return self.app(environ, start)


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(environ.get("trail", [])).encode()]
'''


def test_middleware_order_first_listed_is_outermost_with_inline_table_options(make_request, serve, tmp_path):
    config = tmp_path / "fastcore.toml"
    config.write_text('middleware = [\n'
                      '  {factory = "app:Tag", name = "outer", suffix = "-1"},\n'
                      '  "app:Tag(name=\'middle\')",\n'
                      ']\n')
    server = serve(TAG_APP, "--config", str(config), "--middleware", "app:Tag(name='inner')")
    response = requests.get(server.url + "/", timeout=10)
    assert response.status_code == 200
    # the command line's --middleware replaces the file's list (command line wins)
    assert response.json() == ["inner"]

    server = serve(TAG_APP, "--config", str(config))
    response = requests.get(server.url + "/", timeout=10)
    # in: outer sees the request first; out: the innermost adds its header first
    assert response.json() == ["outer-1", "middle"]
    with server.connect() as client:
        client.send(make_request("GET", "/"))
        raw = client.read_response()
    assert raw.header_all("Trail") == ["middle", "outer-1"]


def test_middleware_repeated_flag_in_order(serve):
    server = serve(TAG_APP, "--middleware", "app:Tag(name='a')", "--middleware", "app:Tag(name='b')",
                   "--middleware", "app:Tag(name='c')", "--workers", "2")
    for _ in range(4):
        assert requests.get(server.url + "/", timeout=10).json() == ["a", "b", "c"]


def _fastcore(directory, *args, timeout=30):
    return subprocess.run([sys.executable, "-m", "fastcore", *args], cwd=directory, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


BAD_ENTRIES = [
    ("nowhere.module:Factory", "fastcore: error: middleware nowhere.module:Factory: no module named 'nowhere'"),
    ("app:NOT_CALLABLE", "fastcore: error: middleware app:NOT_CALLABLE: not callable (it is a int), "
                         "so it cannot wrap the application"),
    ("app:Missing", "fastcore: error: middleware app:Missing: app has no attribute 'Missing'"),
    ("app:Tag(nme='x')", "fastcore: error: middleware app:Tag: unknown option 'nme'; did you mean 'name'?"),
    ("fastcore.middleware:Compress(level=12)",
     "fastcore: error: middleware fastcore.middleware:Compress: option level: expected an integer from 1 to 9, "
     "got 12"),
]


def test_middleware_bad_entry_is_one_line_at_start_in_check_and_with_preload(tmp_path):
    (tmp_path / "app.py").write_text(TAG_APP + "\nNOT_CALLABLE = 3\n")
    for entry, line in BAD_ENTRIES:
        for command in (["check", "app:app"], ["serve", "app:app", "--bind", "127.0.0.1:0"],
                        ["serve", "app:app", "--bind", "127.0.0.1:0", "--preload"]):
            done = _fastcore(tmp_path, *command, "--middleware", entry)
            assert done.returncode != 0, (command, entry)
            lines = [text for text in done.stderr.splitlines() if text.startswith("fastcore: error:")]
            assert lines == [line], (command, done.stderr)
            assert "Traceback" not in done.stderr, done.stderr
            assert "listening on" not in done.stderr


def test_middleware_without_application_is_refused(tmp_path):
    done = _fastcore(tmp_path, "serve", "--bind", "127.0.0.1:0", "--middleware", "fastcore.middleware:Compress")
    assert done.returncode == 2
    assert done.stderr.startswith("fastcore: error: middleware fastcore.middleware:Compress: the middleware wraps "
                                  "the WSGI application, and none is given")
    assert len(done.stderr.splitlines()) == 1


# ---- RequestID --------------------------------------------------------------------------------

ECHO_APP = '''
import json


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    keys = ("fastcore.request_id", "HTTP_X_REQUEST_ID", "HTTP_X_TRACE", "wsgi.url_scheme", "HTTP_HOST",
            "SERVER_NAME", "SERVER_PORT", "SCRIPT_NAME", "PATH_INFO")
    return [json.dumps({key: environ.get(key) for key in keys}).encode()]
'''


def _log_records(path, count, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_request_id_kept_from_trusted_peer_else_generated(serve, tmp_path):
    log = tmp_path / "access.log"
    server = serve(ECHO_APP, "--middleware", "fastcore.middleware:RequestID", "--access-log", str(log),
                   "--access-log-format", "json")
    kept = requests.get(server.url + "/a", headers={"X-Request-ID": "trace-42.abc"}, timeout=10)
    assert kept.json()["fastcore.request_id"] == "trace-42.abc"
    assert kept.json()["HTTP_X_REQUEST_ID"] == "trace-42.abc"
    assert kept.headers["X-Request-ID"] == "trace-42.abc"

    made = requests.get(server.url + "/b", timeout=10)
    made_id = made.json()["fastcore.request_id"]
    assert len(made_id) == 16 and int(made_id, 16) >= 0
    assert made.headers["X-Request-ID"] == made_id == made.json()["HTTP_X_REQUEST_ID"]

    # a value that would need escaping in a log or a header is replaced even from a trusted peer
    odd = requests.get(server.url + "/c", headers={"X-Request-ID": 'a"b c'}, timeout=10)
    assert odd.headers["X-Request-ID"] != 'a"b c' and len(odd.headers["X-Request-ID"]) == 16

    server.stop()
    records = [json.loads(line) for line in _log_records(log, 3)]
    assert [(r["path"], r["request_id"]) for r in records] == [
        ("/a", "trace-42.abc"), ("/b", made_id), ("/c", odd.headers["X-Request-ID"])]


def test_request_id_from_untrusted_peer_is_replaced_and_logged_combined_id(serve, tmp_path):
    log = tmp_path / "access.log"
    server = serve(ECHO_APP, "--middleware", "fastcore.middleware:RequestID(header='X-Trace')",
                   "--forwarded-allow-ips", "10.0.0.0/8", "--access-log", str(log),
                   "--access-log-format", "combined_id")
    response = requests.get(server.url + "/x", headers={"X-Trace": "forged-by-client"}, timeout=10)
    body = response.json()
    assert body["HTTP_X_TRACE"] == body["fastcore.request_id"] == response.headers["X-Trace"]
    assert response.headers["X-Trace"] != "forged-by-client" and len(response.headers["X-Trace"]) == 16
    server.stop()
    (line,) = _log_records(log, 1)
    assert line.startswith("127.0.0.1 - - [") and '"GET /x HTTP/1.1" 200 ' in line
    assert line.endswith(f'"{response.headers["X-Trace"]}"')


# ---- Compress ---------------------------------------------------------------------------------

COMPRESS_APP = '''
import os
import time

TEXT = b"".join(b"line %d of a compressible page\\n" % n for n in range(400))
HERE = os.path.dirname(os.path.abspath(__file__))


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/page":
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("ETag", '"v1"')])
        return [TEXT]
    if path == "/small":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"tiny"]
    if path == "/image":
        start_response("200 OK", [("Content-Type", "image/png")])
        return [TEXT]
    if path == "/encoded":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Encoding", "br")])
        return [TEXT]
    if path == "/no-transform":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Cache-Control", "public, no-transform")])
        return [TEXT]
    if path == "/empty":
        start_response("204 No Content", [])
        return []
    if path == "/not-modified":
        start_response("304 Not Modified", [("ETag", '"v1"')])
        return []
    if path == "/stream":  # as Flask streams: the head first, then a generator
        start_response("200 OK", [("Content-Type", "text/plain")])
        return stream()
    if path == "/file":
        start_response("200 OK", [("Content-Type", "text/css")])
        return environ["wsgi.file_wrapper"](open(os.path.join(HERE, "style.css"), "rb"))
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no"]


def stream():
    yield b"first part, sent at once\\n" * 10
    # the last part waits for the test to say it has the first one
    flag = os.path.join(HERE, "go")
    deadline = time.monotonic() + 10
    while not os.path.exists(flag) and time.monotonic() < deadline:
        time.sleep(0.01)
    yield b"last part\\n" if os.path.exists(flag) else b"timed out\\n"
'''

STYLE = "body { color: black; }\n" * 200


def _text_of(compressed, coding):
    return gzip.decompress(compressed) if coding == "gzip" else brotli.decompress(compressed)


def test_compress_gzip_decoded_by_a_real_client(make_request, serve):
    server = serve(COMPRESS_APP, "--middleware", "fastcore.middleware:Compress", files={"style.css": STYLE})
    response = requests.get(server.url + "/page", headers={"Accept-Encoding": "gzip"}, timeout=10)
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Vary"] == "Accept-Encoding"
    assert response.headers["ETag"] == 'W/"v1"'
    assert "Content-Length" not in response.headers
    assert response.text.startswith("line 0 of a compressible page\nline 1")
    assert len(response.text) == len(b"".join(b"line %d of a compressible page\n" % n for n in range(400)))

    with server.connect() as client:  # the bytes on the wire are smaller than the page
        client.send(make_request("GET", "/page", [("Accept-Encoding", "gzip")]))
        raw = client.read_response()
    assert len(raw.body) < len(response.text) // 4
    assert gzip.decompress(raw.body).decode() == response.text

    with server.connect() as client:  # a file_wrapper body is compressed too
        client.send(make_request("GET", "/file", [("Accept-Encoding", "gzip, deflate")]))
        raw = client.read_response()
    assert raw.header("Content-Encoding") == "gzip" and gzip.decompress(raw.body).decode() == STYLE

    curl = subprocess.run(["curl", "-s", "--compressed", "-D", "-", server.url + "/page"], capture_output=True,
                          timeout=30)
    head, _, body = curl.stdout.partition(b"\r\n\r\n")
    assert b"content-encoding: gzip" in head.lower() or b"content-encoding: br" in head.lower()
    assert body.decode() == response.text


def test_compress_brotli_when_installed_and_preferred(make_request, serve):
    server = serve(COMPRESS_APP, "--middleware", "fastcore.middleware:Compress")
    for accept, coding in (("br", "br"), ("gzip, br", "br"), ("br;q=0.5, gzip", "gzip"), ("br;q=0, gzip", "gzip"),
                           ("*", "br"), ("gzip;q=0, *;q=0.1", "br")):
        with server.connect() as client:
            client.send(make_request("GET", "/page", [("Accept-Encoding", accept)]))
            raw = client.read_response()
        assert raw.header("Content-Encoding") == coding, accept
        assert _text_of(raw.body, coding).startswith(b"line 0 of")

    server = serve(COMPRESS_APP, "--middleware", "fastcore.middleware:Compress(brotli=False, level=9)")
    with server.connect() as client:
        client.send(make_request("GET", "/page", [("Accept-Encoding", "br, gzip")]))
        raw = client.read_response()
    assert raw.header("Content-Encoding") == "gzip"


def test_compress_leaves_alone_what_it_must(make_request, serve):
    server = serve(COMPRESS_APP, "--middleware", "fastcore.middleware:Compress(min_size=100)")
    accept = [("Accept-Encoding", "gzip, br")]
    for path, status in (("/small", 200), ("/image", 200), ("/encoded", 200), ("/no-transform", 200),
                         ("/empty", 204), ("/not-modified", 304)):
        with server.connect() as client:
            client.send(make_request("GET", path, accept))
            raw = client.read_response()
        assert raw.status == status, path
        assert raw.header("Content-Encoding") in (None, "br" if path == "/encoded" else None), path
        assert raw.header("Vary") is None, path
    with server.connect() as client:
        client.send(make_request("HEAD", "/page", accept))
        raw = client.read_response("HEAD")
    assert raw.status == 200 and raw.header("Content-Encoding") is None
    # compressible but not accepted: identity, with Vary so a cache keeps both apart
    with server.connect() as client:
        client.send(make_request("GET", "/page"))
        raw = client.read_response()
    assert raw.header("Content-Encoding") is None and raw.header("Vary") == "Accept-Encoding"
    assert raw.body.startswith(b"line 0 of")


def _read_chunk(client):
    size = int(client._read_line().split(b";")[0], 16)
    data = client._read_exactly(size)
    assert client._read_exactly(2) == b"\r\n"
    return data


def test_compress_streams_a_generator_chunk_by_chunk(make_request, serve):
    # on a thread, so that the loop writes each chunk while the application waits
    server = serve(COMPRESS_APP, "--middleware", "fastcore.middleware:Compress", "--threads", "2")
    flag = server.dir / "go"
    with server.connect() as client:
        client.send(make_request("GET", "/stream", [("Accept-Encoding", "gzip")]))
        _, status, _, headers = client.read_head()
        assert status == 200 and ("Content-Encoding", "gzip") in headers
        decoder = zlib.decompressobj(31)
        first = b""
        while b"first part, sent at once\n" * 10 != first:  # before the app produced the last part
            assert not flag.exists()
            first += decoder.decompress(_read_chunk(client))
        flag.write_text("go")
        rest = b""
        while True:
            chunk = _read_chunk(client)
            if not chunk:
                break
            rest += decoder.decompress(chunk)
        rest += decoder.flush()
        assert decoder.eof
        assert rest == b"last part\n"  # the zero chunk and its CRLF read: the body is whole


# ---- ProxyFix ---------------------------------------------------------------------------------

FLASK_URLS = '''
from flask import Flask, request, url_for

app = Flask(__name__)


@app.route("/where")
def where():
    return url_for("where", _external=True) + " " + request.remote_addr
'''

FORWARDED = {"X-Forwarded-Proto": "http, https", "X-Forwarded-Host": "shop.example:8443",
             "X-Forwarded-Prefix": "/store"}


def test_proxy_fix_applies_trusted_scheme_host_prefix(serve):
    server = serve(ECHO_APP, "--middleware", "fastcore.middleware:ProxyFix", "--root-path", "/app")
    body = requests.get(server.url + "/app/x", headers=FORWARDED, timeout=10).json()
    assert body["wsgi.url_scheme"] == "https"
    assert body["HTTP_HOST"] == "shop.example:8443"
    assert (body["SERVER_NAME"], body["SERVER_PORT"]) == ("shop.example", "8443")
    assert body["SCRIPT_NAME"] == "/store/app"

    plain = requests.get(server.url + "/app/x", timeout=10).json()
    assert plain["wsgi.url_scheme"] == "http" and plain["SCRIPT_NAME"] == "/app"

    bad = requests.get(server.url + "/x", headers={"X-Forwarded-Proto": "gopher", "X-Forwarded-Host": "a b",
                                                   "X-Forwarded-Prefix": "no-slash"}, timeout=10).json()
    assert bad["wsgi.url_scheme"] == "http" and bad["HTTP_HOST"].startswith("127.0.0.1:")


def test_proxy_fix_ignores_untrusted_peer_and_serves_flask_urls(serve):
    untrusted = serve(ECHO_APP, "--middleware", "fastcore.middleware:ProxyFix", "--forwarded-allow-ips", "10.0.0.0/8")
    body = requests.get(untrusted.url + "/x", headers=FORWARDED, timeout=10).json()
    assert body["wsgi.url_scheme"] == "http" and body["HTTP_HOST"].startswith("127.0.0.1:")
    assert body["SCRIPT_NAME"] == ""

    flask_server = serve(FLASK_URLS, "--middleware", "fastcore.middleware:ProxyFix")
    text = requests.get(flask_server.url + "/where", headers=FORWARDED, timeout=10).text
    assert text == "https://shop.example:8443/store/where 127.0.0.1"


def test_shipped_middlewares_together_in_a_config_file(serve, tmp_path):
    config = tmp_path / "fastcore.toml"
    config.write_text('middleware = [\n'
                      '  "fastcore.middleware:ProxyFix",\n'
                      '  {factory = "fastcore.middleware:RequestID", header = "X-Request-ID"},\n'
                      '  {factory = "fastcore.middleware:Compress", min_size = 10, level = 1},\n'
                      ']\n')
    server = serve(ECHO_APP, "--config", str(config))
    response = requests.get(server.url + "/x", headers={**FORWARDED, "Accept-Encoding": "gzip",
                                                        "X-Request-ID": "abc"}, timeout=10)
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["X-Request-ID"] == "abc"
    assert response.json()["wsgi.url_scheme"] == "https"
