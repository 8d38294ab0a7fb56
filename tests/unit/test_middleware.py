"""fastcore.middleware: the middleware setting, the chain's checks, and the
shipped middlewares under another WSGI server (wsgiref, real sockets) and
PEP 3333's validator, for what fastcore's own gateway never sends them (an
application that calls start_response lazily, write())."""
import gzip
import http.client
import json
import threading
import wsgiref.simple_server
import wsgiref.validate

import pytest

from fastcore import config as config_module
from fastcore.config import ConfigError, MiddlewareEntry, build_config, parse_middleware, read_config_file
from fastcore.middleware import Compress, ProxyFix, RequestID
from fastcore.middleware.chain import MiddlewareError, resolve_layers, wrap_application
from fastcore.middleware.compress import accepted_weights
from fastcore.middleware.listing import core_layers

PAGE = b"".join(b"line %d of a page\n" % n for n in range(300))


# ---- the setting -------------------------------------------------------------------------------

def test_middleware_setting_forms():
    assert parse_middleware(["a.b:C", "x:Y(level=5, types=['text/html'])", {"factory": "m:F", "q": 1}]) == (
        MiddlewareEntry("a.b:C"), MiddlewareEntry("x:Y", (("level", 5), ("types", ["text/html"]))),
        MiddlewareEntry("m:F", (("q", 1),)))
    # the environment: whitespace or commas between entries, never inside their options
    assert parse_middleware("a:B x:Y(level=5, t='a b'),z:W") == (
        MiddlewareEntry("a:B"), MiddlewareEntry("x:Y", (("level", 5), ("t", "a b"))), MiddlewareEntry("z:W"))
    assert str(MiddlewareEntry("x:Y", (("level", 5),))) == "x:Y(level=5)"


@pytest.mark.parametrize("bad", ["module_only", "a:b:c", "x:Y(1)", "x:Y(level=open('f'))", "x:Y(**k)",
                                 "x:Y(level=", 3, {"factory": "nope"}, {"option": 1}])
def test_middleware_setting_refuses_malformed_entry_in_one_line(bad):
    with pytest.raises(ConfigError) as error:
        build_config({"middleware": [bad]}, {})
    assert str(error.value).startswith("setting middleware (--middleware): expected ")
    assert "\n" not in str(error.value)


def test_middleware_setting_from_toml_inline_tables_and_environment(tmp_path):
    path = tmp_path / "fastcore.toml"
    path.write_text('middleware = ["a:B", {factory = "c.d:E", level = 3, types = ["text/css"]}]\n')
    assert read_config_file(str(path))["middleware"][1]["level"] == 3
    config = build_config({"config": str(path)}, {})
    assert config.middleware == (MiddlewareEntry("a:B"),
                                 MiddlewareEntry("c.d:E", (("level", 3), ("types", ["text/css"]))))
    assert build_config({}, {"FASTCORE_MIDDLEWARE": "a:B c:D(x=1)"}).middleware == (
        MiddlewareEntry("a:B"), MiddlewareEntry("c:D", (("x", 1),)))
    assert build_config({}, {}).middleware == ()


# ---- the chain ---------------------------------------------------------------------------------

def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ.get("trail", "").encode()]


class Trail:
    def __init__(self, app, mark):
        self.app, self.mark = app, mark

    def __call__(self, environ, start_response):
        environ["trail"] = environ.get("trail", "") + self.mark
        return self.app(environ, start_response)


def test_chain_first_entry_outermost_and_server_options_given():
    config = build_config({"forwarded_allow_ips": "10.0.0.0/8"}, {})
    entries = parse_middleware([f"{__name__}:Trail(mark='1')", {"factory": f"{__name__}:Trail", "mark": "2"}])
    app = wrap_application(hello, entries, config)
    seen = []
    assert b"".join(app({}, lambda status, headers, exc_info=None: seen.append(status))) == b"12"
    layers = resolve_layers(parse_middleware(["fastcore.middleware:RequestID", "fastcore.middleware:Compress"]),
                            config)
    assert layers[0].options == {"forwarded_allow_ips": ("10.0.0.0/8",)}
    assert layers[1].options == {}  # Compress trusts nobody's fields: it takes no such option


@pytest.mark.parametrize("entry, message", [
    ("nowhere:F", "middleware nowhere:F: no module named 'nowhere'"),
    ("fastcore.nowhere:F", "middleware fastcore.nowhere:F: no module named 'fastcore.nowhere'"),
    ("fastcore.middleware:Nope", "middleware fastcore.middleware:Nope: fastcore.middleware has no attribute 'Nope'"),
    ("fastcore.config:SECTIONS", "middleware fastcore.config:SECTIONS: not callable (it is a tuple), so it cannot "
                                 "wrap the application"),
    ("fastcore.middleware:Compress(levl=3)", "middleware fastcore.middleware:Compress: unknown option 'levl'; did "
                                             "you mean 'level'?"),
    ("fastcore.middleware:Compress(min_size=-1)", "middleware fastcore.middleware:Compress: option min_size: "
                                                  "expected an integer >= 0, got -1"),
    ("fastcore.middleware:RequestID(header='X Id')", "middleware fastcore.middleware:RequestID: option header: "
                                                     "expected a header name (letters, digits and '-'), got 'X Id'"),
    ("fastcore.middleware:ProxyFix(forwarded_allow_ips='nope')",
     "middleware fastcore.middleware:ProxyFix: option forwarded_allow_ips: expected addresses or networks such as "
     "127.0.0.1/8, got 'nope'"),
])
def test_chain_bad_entry_is_one_line(entry, message):
    with pytest.raises(MiddlewareError) as error:
        wrap_application(hello, parse_middleware([entry]), build_config({}, {}))
    assert str(error.value) == message


# ---- the shipped middlewares under another server ----------------------------------------------

class WsgirefServer:
    """wsgiref's server on 127.0.0.1:0 in a thread, the application checked by
    wsgiref.validate on both sides."""

    def __init__(self, app):
        class Quiet(wsgiref.simple_server.WSGIRequestHandler):
            def log_message(self, *args):
                pass

        self.httpd = wsgiref.simple_server.make_server("127.0.0.1", 0, wsgiref.validate.validator(app),
                                                       handler_class=Quiet)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.start()

    def get(self, path, headers=None):
        connection = http.client.HTTPConnection("127.0.0.1", self.httpd.server_port, timeout=10)
        try:
            connection.request("GET", path, headers=headers or {})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def close(self):
        self.httpd.shutdown()
        self.thread.join(10)
        self.httpd.server_close()


@pytest.fixture
def wsgiref_server():
    servers = []

    def start(app):
        servers.append(WsgirefServer(app))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def lazy_app(environ, start_response):
    """start_response called only when the body is first pulled (PEP 3333 allows it)."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield PAGE[:1000]
    yield PAGE[1000:]


def writing_app(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "application/json")])
    write(PAGE)
    return []


def test_compress_lazy_start_response_and_write_under_wsgiref(wsgiref_server):
    lazy = wsgiref_server(Compress(lazy_app))
    status, headers, body = lazy.get("/", {"Accept-Encoding": "gzip"})
    assert (status, headers["Content-Encoding"], gzip.decompress(body)) == (200, "gzip", PAGE)
    status, headers, body = lazy.get("/")
    assert (headers.get("Content-Encoding"), headers["Vary"], body) == (None, "Accept-Encoding", PAGE)

    writing = wsgiref_server(Compress(writing_app))
    status, headers, body = writing.get("/", {"Accept-Encoding": "gzip"})
    assert (status, headers["Content-Encoding"], gzip.decompress(body)) == (200, "gzip", PAGE)


def echo(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    keys = ("fastcore.request_id", "wsgi.url_scheme", "HTTP_HOST", "SCRIPT_NAME")
    return [json.dumps({key: environ.get(key) for key in keys}).encode()]


def test_request_id_and_proxy_fix_under_wsgiref(wsgiref_server):
    server = wsgiref_server(RequestID(ProxyFix(echo)))
    status, headers, body = server.get("/", {"X-Request-ID": "from-proxy", "X-Forwarded-Proto": "https",
                                             "X-Forwarded-Host": "example.com", "X-Forwarded-Prefix": "/p/"})
    assert json.loads(body) == {"fastcore.request_id": "from-proxy", "wsgi.url_scheme": "https",
                                "HTTP_HOST": "example.com", "SCRIPT_NAME": "/p"}
    assert headers["X-Request-ID"] == "from-proxy"


def test_compress_accept_encoding_weights():
    assert accepted_weights("gzip;q=0.5, br, x-gzip;q=0.2, identity;q=0, bad;q=x") == {
        "gzip": 0.2, "br": 1.0, "identity": 0.0, "bad": 0.0}
    gzip_only = Compress(hello, brotli=False)
    assert gzip_only.choose_coding("br, gzip;q=0.1") == "gzip"
    assert gzip_only.choose_coding("br") is None
    assert gzip_only.choose_coding("") is None


# ---- the listing -------------------------------------------------------------------------------

def test_listing_core_stages_show_the_limit_settings():
    """The limits stage lists the protection settings with the values the
    server runs with (read by name and section: a setting added later shows
    with no change to the listing)."""
    config = build_config({"limit_req_rate": "10", "limit_conn": "4"}, {})
    stages = {layer.name: layer for layer in core_layers(config)}
    assert list(stages) == ["listen", "head", "real-ip", "limits", "body", "response"]
    assert stages["limits"].settings["limit_req_rate"] == 10.0
    assert stages["limits"].settings["limit_conn"] == 4
    plain = {layer.name: layer for layer in core_layers(build_config({}, {}))}
    assert plain["limits"].settings["limit_req_rate"] == 0.0


