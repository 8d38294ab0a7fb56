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
    return "200 OK", _TEXT, b"ok\n"


ENDPOINTS = {"/metrics": _metrics, "/status": _status, "/health": _health}


def make_admin_app(snapshot):
    """A WSGI application serving ENDPOINTS from `snapshot()`."""

    def admin_app(environ, start_response):
        endpoint = ENDPOINTS.get(environ.get("PATH_INFO") or "/")
        method = environ["REQUEST_METHOD"]
        headers = []
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
