"""The admin endpoints (/metrics, /status, /health) as a WSGI application.

`snapshot()` is called once per request to an endpoint and returns
`(arbiter_pid, started_time, workers, arbiter_counters, draining)`:
`started_time` a Unix timestamp in seconds, `workers` a list of
`stats_layout.read()` dicts (with the arbiter's `slot` and `restarts`), `arbiter_counters` the dict render_prometheus
takes, `draining` true while the server is shutting down. The application
only shapes the answer; where the snapshot comes from is the caller's
business.
"""
import json
import urllib.parse

from fastcore.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from fastcore.metrics import render_prometheus, render_status

__all__ = ["make_admin_app"]

ALLOWED_METHODS = ("GET", "HEAD")
_TEXT = "text/plain; charset=utf-8"


def _metrics(snapshot):
    _, _, workers, arbiter_counters, _ = snapshot
    return "200 OK", METRICS_CONTENT_TYPE, render_prometheus(workers, arbiter_counters).encode("utf-8")


def _status(snapshot):
    arbiter_pid, started, workers, _, _ = snapshot
    document = render_status(arbiter_pid, started, workers)
    return "200 OK", "application/json", (json.dumps(document) + "\n").encode("utf-8")


def _health(snapshot):
    workers, draining = snapshot[2], snapshot[4]
    if draining:
        return "503 Service Unavailable", _TEXT, b"draining\n"
    overloaded = sum(1 for worker in workers if worker.get("overloaded"))
    if overloaded:
        # out of descriptors: a balancer in front should send less here
        return "503 Service Unavailable", _TEXT, f"overloaded: {overloaded} of {len(workers)} workers out of file " \
                                                 f"descriptors\n".encode()
    queued = sum(1 for worker in workers if worker.get("app_overloaded"))
    if queued:
        # max_pending requests wait for the application: new ones get 503 now
        return "503 Service Unavailable", _TEXT, f"overloaded: {queued} of {len(workers)} workers have max_pending " \
                                                 f"requests waiting for the application\n".encode()
    return "200 OK", _TEXT, b"ok\n"


ENDPOINTS = {"/metrics": _metrics, "/status": _status, "/health": _health}


def _upstreams_call(pools, environ, method, path):
    """GET /upstreams, POST /upstreams/NAME/servers, DELETE
    /upstreams/NAME/servers/ADDR: (status, content type, body, extra headers)."""
    # segments from the raw target, each decoded: a pool named by its prefix
    # ("/api") is written %2Fapi
    raw = environ.get("RAW_URI", path).split("?", 1)[0]
    parts = [urllib.parse.unquote(part) for part in raw.strip("/").split("/")]
    if parts == ["upstreams"]:
        if method not in ALLOWED_METHODS:
            return "405 Method Not Allowed", _TEXT, b"method not allowed\n", [("Allow", "GET, HEAD")]
        body = (json.dumps(pools.upstreams_document()) + "\n").encode()
        return "200 OK", "application/json", body, [("Cache-Control", "no-store")]
    if len(parts) == 3 and parts[2] == "servers":
        if method != "POST":
            return "405 Method Not Allowed", _TEXT, b"method not allowed\n", [("Allow", "POST")]
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            server = json.loads(environ["wsgi.input"].read(length) or b"null")
        except ValueError:
            server = None
        if not isinstance(server, dict):
            return "400 Bad Request", _TEXT, b"expected a JSON object with an address\n", []
        code, message = pools.change_upstreams(parts[1], "add", server=server)
    elif len(parts) == 4 and parts[2] == "servers":
        if method != "DELETE":
            return "405 Method Not Allowed", _TEXT, b"method not allowed\n", [("Allow", "DELETE")]
        code, message = pools.change_upstreams(parts[1], "remove", address=parts[3])
    else:
        return "404 Not Found", _TEXT, b"not found\n", []
    reasons = {201: "Created", 202: "Accepted", 400: "Bad Request", 404: "Not Found", 409: "Conflict"}
    return f"{code} {reasons[code]}", _TEXT, (message + "\n").encode(), []


def make_admin_app(snapshot, pools=None):
    """A WSGI application serving ENDPOINTS from `snapshot()`, and with
    `pools` (the arbiter: upstreams_document(), change_upstreams()) the
    /upstreams API of the proxy locations."""

    def admin_app(environ, start_response):
        path = environ.get("PATH_INFO") or "/"
        endpoint = ENDPOINTS.get(path)
        method = environ["REQUEST_METHOD"]
        headers = []
        if pools is not None and (path == "/upstreams" or path.startswith("/upstreams/")):
            status, content_type, body, headers = _upstreams_call(pools, environ, method, path)
            headers += [("Content-Type", content_type), ("Content-Length", str(len(body)))]
            start_response(status, headers)
            return [] if method == "HEAD" else [body]
        if endpoint is None:
            status, content_type, body = "404 Not Found", _TEXT, b"not found\n"
        elif method not in ALLOWED_METHODS:
            status, content_type, body = "405 Method Not Allowed", _TEXT, b"method not allowed\n"
            headers.append(("Allow", ", ".join(ALLOWED_METHODS)))
        else:
            status, content_type, body = endpoint(snapshot())
            # a scraper or a balancer's health check must see the state now
            headers.append(("Cache-Control", "no-store"))
        headers += [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        start_response(status, headers)
        # HEAD: the same headers, Content-Length included, and no body
        return [] if method == "HEAD" else [body]

    return admin_app
