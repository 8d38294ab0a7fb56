"""fastcore.admin: /metrics, /status, /health through wsgiref's PEP 3333 validator."""

import json
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fastcore import stats_layout
from fastcore.admin import make_admin_app

# the validator reports some violations as warnings: make them failures
pytestmark = pytest.mark.filterwarnings("error")


def worker_stats(**values):
    """A worker dict as the arbiter gets it: packed into a block, read back."""
    return stats_layout.read(stats_layout.pack(**values))


class Server:
    """A snapshot source whose draining flag tests can flip; counts calls."""

    def __init__(self):
        self.draining = False
        self.overloaded = 0
        self.app_overloaded = 0
        self.calls = 0

    def snapshot(self):
        self.calls += 1
        workers = [dict(worker_stats(pid=11, status_2xx=3, duration_le_0=3, connections_open=1,
                                     app_overloaded=self.app_overloaded), slot=0, restarts=0),
                   dict(worker_stats(pid=12, status_4xx=1, duration_inf=1, overloaded=self.overloaded), slot=1,
                        restarts=2)]
        return 99, 1_700_000_000.0, workers, {"worker_restarts": 2, "worker_timeouts": 0}, self.draining


@pytest.fixture
def server():
    return Server()


def call(app, path, method="GET"):
    """(status, headers dict, body) of one request through the validator."""
    # setup_testing_defaults sets SCRIPT_NAME only without PATH_INFO, and never
    # QUERY_STRING; a server always sends both and the validator checks them
    environ = {"REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": ""}
    setup_testing_defaults(environ)
    response = {}

    def start_response(status, headers, exc_info=None):
        response["status"] = status
        response["headers"] = dict(headers)

    result = validator(app)(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        result.close()
    return response["status"], response["headers"], body


def test_admin_metrics_endpoint(server):
    status, headers, body = call(make_admin_app(server.snapshot), "/metrics")
    assert status == "200 OK"
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert headers["Content-Length"] == str(len(body))
    families = {family.name: family for family in text_string_to_metric_families(body.decode())}
    requests = {sample.labels["status_class"]: sample.value for sample in families["fastcore_requests"].samples}
    assert requests["2xx"] == 3 and requests["4xx"] == 1
    assert families["fastcore_worker_restarts"].samples[0].value == 2


def test_admin_status_endpoint(server):
    status, headers, body = call(make_admin_app(server.snapshot), "/status")
    assert status == "200 OK"
    assert headers["Content-Type"] == "application/json"
    document = json.loads(body)
    assert document["arbiter_pid"] == 99
    assert document["uptime_seconds"] > 0
    assert [worker["pid"] for worker in document["workers"]] == [11, 12]
    assert document["workers"][0]["open_connections"] == 1
    assert [(worker["slot"], worker["restarts"]) for worker in document["workers"]] == [(0, 0), (1, 2)]


def test_admin_health_ok_while_serving(server):
    status, headers, body = call(make_admin_app(server.snapshot), "/health")
    assert (status, body) == ("200 OK", b"ok\n")
    assert headers["Content-Type"].startswith("text/plain")


def test_admin_health_503_when_draining(server):
    server.draining = True
    status, _, body = call(make_admin_app(server.snapshot), "/health")
    assert (status, body) == ("503 Service Unavailable", b"draining\n")


def test_admin_health_503_when_a_worker_is_out_of_descriptors(server):
    server.overloaded = 1
    status, _, body = call(make_admin_app(server.snapshot), "/health")
    assert (status, body) == ("503 Service Unavailable", b"overloaded: 1 of 2 workers out of file descriptors\n")
    server.overloaded = 0
    assert call(make_admin_app(server.snapshot), "/health")[0] == "200 OK"


def test_admin_health_503_when_a_worker_has_max_pending_requests_waiting(server):
    server.app_overloaded = 1
    status, _, body = call(make_admin_app(server.snapshot), "/health")
    assert (status, body) == ("503 Service Unavailable",
                              b"overloaded: 1 of 2 workers have max_pending requests waiting for the application\n")
    server.app_overloaded = 0
    assert call(make_admin_app(server.snapshot), "/health")[0] == "200 OK"


def test_admin_endpoints_not_cached(server):
    app = make_admin_app(server.snapshot)
    for path in ("/metrics", "/status", "/health"):
        assert call(app, path)[1]["Cache-Control"] == "no-store"


@pytest.mark.parametrize("path", ["/", "/metrics/", "/healthz", "/status/x"])
def test_admin_unknown_path_404(server, path):
    status, _, body = call(make_admin_app(server.snapshot), path)
    assert status == "404 Not Found" and body == b"not found\n"
    assert server.calls == 0


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
def test_admin_other_methods_405_with_allow(server, method):
    status, headers, _ = call(make_admin_app(server.snapshot), "/metrics", method=method)
    assert status == "405 Method Not Allowed"
    assert headers["Allow"] == "GET, HEAD"
    assert server.calls == 0


@pytest.mark.parametrize("path", ["/metrics", "/status", "/health"])
def test_admin_head_same_headers_no_body(server, path, monkeypatch):
    # /status holds the uptime: one clock for both calls, or its digits (and
    # so the length) may differ between them
    monkeypatch.setattr("fastcore.metrics.time.time", lambda: 1_700_000_123.25)
    app = make_admin_app(server.snapshot)
    get_status, get_headers, get_body = call(app, path)
    head_status, head_headers, head_body = call(app, path, method="HEAD")
    assert head_body == b""
    assert head_status == get_status
    assert head_headers["Content-Length"] == str(len(get_body))
    assert head_headers["Content-Type"] == get_headers["Content-Type"]


def test_admin_head_health_503_when_draining(server):
    server.draining = True
    status, _, body = call(make_admin_app(server.snapshot), "/health", method="HEAD")
    assert status.startswith("503") and body == b""


def test_admin_snapshot_taken_per_request(server):
    app = make_admin_app(server.snapshot)
    assert call(app, "/health")[0] == "200 OK"
    server.draining = True
    assert call(app, "/health")[0].startswith("503")
    assert server.calls == 2
