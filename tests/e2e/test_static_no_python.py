"""A static request runs no Python code in the worker.

The launcher (written to tmp_path, run as its own process) builds a config
with fastcore.config.build_config, binds 127.0.0.1:0 with
fastcore.worker.bind_socket, installs `sys.setprofile` with a function that
counts "call" events -- one per Python-level function call; code compiled
by Cython and C built-ins give none -- and a SIGUSR2 handler that writes
the count to stderr, then runs fastcore.worker.run_worker in its main
thread, as a worker process does. It prints the readiness line of
`fastcore serve`, so conftest's `adopt` manages it like a server.

The handler's own calls are not counted; each test still measures the
baseline, the count between two signals with no request in between (any
Python the idle loop runs would show there). Then,
over keep-alive connections opened and warmed before the first signal, it
sends 1000 static requests of every kind the handler answers (200 from
memory and by sendfile, HEAD, 304 by ETag and by date, 206 single and
multipart, suffix and open ranges, If-Range, 412, 416, 301, 403, 404, 405,
the index, a precompressed variant, a directory listing, the router's own
404) and signals again: the difference must be the baseline, i.e. zero
calls per request.

Controls, so the tests can fail: in the same worker, 1000 requests to the
WSGI application must add at least 1000 calls; and with an access log on,
the static handler itself calls into Python (AccessLog.log) on every
request, which the counter must see.
"""
import json
import signal
import subprocess
import sys
import time

import pytest

REQUESTS = 1000
CONNECTIONS = 4
READ_TIMEOUT = 10.0

LAUNCHER = r'''
import json
import os
import signal
import sys

from fastcore.config import build_config
from fastcore.worker import bind_socket, run_worker

settings, with_app = json.loads(sys.argv[1]), sys.argv[2] == "app"
calls = [0]
signals = [0]


def count(frame, event, arg):
    if event == "call" and frame.f_code is not REPORT:
        calls[0] += 1


def report(signum, frame):
    signals[0] += 1
    os.write(2, b"fastcore-test: calls %d %d\n" % (signals[0], calls[0]))


# The handler's own calls are left out: a signal that lands while `count`
# runs has its handler run inside the profile function, where no event is
# reported, so counting them would make the baseline 0 or 1 by chance.
REPORT = report.__code__


def app(environ, start_response):
    body = environ["PATH_INFO"].encode("latin-1")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


config = build_config(settings, environ={})
sock = bind_socket("127.0.0.1:0", 128)
signal.signal(signal.SIGUSR2, report)  # run_worker takes TERM, INT, QUIT, USR1; USR2 is free
os.write(2, b"fastcore: listening on http://127.0.0.1:%d (pid %d)\n" % (sock.getsockname()[1], os.getpid()))
sys.setprofile(count)  # this thread only: the loop's, where static requests are answered
status = run_worker(config, [sock], app=app if with_app else None)
sys.setprofile(None)
sys.exit(status)
'''

SMALL = b"small static file, served from memory\n" * 4
BIG = bytes(range(256)) * 400  # 100 KiB: over static_inline_max, sent with sendfile
INDEX = b"<!DOCTYPE html><title>index</title>\n"
GZIPPED = b"\x1f\x8b stands in for gzip data"


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "public"
    (root / "dir").mkdir(parents=True)
    (root / "dir" / "inside.txt").write_bytes(b"listed\n")
    (root / "small.txt").write_bytes(SMALL)
    (root / "big.bin").write_bytes(BIG)
    (root / "index.html").write_bytes(INDEX)
    (root / "style.css").write_bytes(b"body { color: red }\n" * 20)
    (root / "style.css.gz").write_bytes(GZIPPED)
    (root / ".hidden").write_bytes(b"dotfile")
    return root


@pytest.fixture
def launch(tmp_path, adopt):
    """launch(settings, with_app) -> (a ready Server (conftest) for a
    launcher process, its CallCounter); the server is stopped with SIGTERM
    at teardown and must exit 0."""
    script = tmp_path / "launch_worker.py"
    script.write_text(LAUNCHER)

    def start(settings, with_app):
        proc = subprocess.Popen([sys.executable, str(script), json.dumps(settings), "app" if with_app else "none"],
                                cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        server = adopt(proc, tmp_path)
        return server, CallCounter(server)

    return start


EPOLL_SYSCALLS = {232, 281, 441}  # x86-64 epoll_wait, epoll_pwait, epoll_pwait2


def in_epoll_wait(pid):
    """The process's main thread is blocked in epoll_wait (its loop is idle)."""
    try:
        with open(f"/proc/{pid}/wchan") as f:
            if "epoll" in f.read():
                return True
        with open(f"/proc/{pid}/syscall") as f:
            return int(f.read().split()[0]) in EPOLL_SYSCALLS
    except (OSError, ValueError, IndexError):
        return False


class CallCounter:
    """The launcher's count of Python-level calls: SIGUSR2, then its answer
    read from stderr (each answer numbered, so none is read twice).

    The signal is sent only once the loop waits in epoll_wait: one that
    lands between the loop's PyErr_CheckSignals() and its draining of the
    wakeup pipe is left pending until the next wakeup (up to the nearest
    deadline, keepalive_timeout with connections open) -- a race of the
    loop reported on its own, kept out of what this file measures."""

    def __init__(self, server):
        self.server = server
        self.asked = 0

    def __call__(self):
        self.asked += 1
        deadline = time.monotonic() + READ_TIMEOUT
        while not in_epoll_wait(self.server.pid):
            assert time.monotonic() < deadline, "the worker's loop never went idle"
            time.sleep(0.001)
        self.server.proc.send_signal(signal.SIGUSR2)
        match = self.server.wait_for_stderr(rf"fastcore-test: calls {self.asked} (\d+)\n", timeout=READ_TIMEOUT)
        return int(match.group(1))


def static_cases(prefix, etag_small, date_small, etag_big, autoindex):
    """(method, target, headers, status, body or None) for every kind of
    static answer; none of them closes the connection."""
    p = prefix
    return [
        ("GET", f"{p}/small.txt", [], 200, SMALL),
        ("GET", f"{p}/big.bin", [], 200, BIG),
        ("HEAD", f"{p}/small.txt", [], 200, b""),
        ("HEAD", f"{p}/big.bin", [], 200, b""),
        ("GET", f"{p}/small.txt", [("If-None-Match", etag_small)], 304, b""),
        ("GET", f"{p}/small.txt", [("If-None-Match", f'"nope", W/{etag_small}')], 304, b""),
        ("GET", f"{p}/small.txt", [("If-Modified-Since", date_small)], 304, b""),
        ("HEAD", f"{p}/big.bin", [("If-None-Match", etag_big)], 304, b""),
        ("GET", f"{p}/small.txt", [("Range", "bytes=0-9")], 206, SMALL[:10]),
        ("GET", f"{p}/small.txt", [("Range", "bytes=-7")], 206, SMALL[-7:]),
        ("GET", f"{p}/big.bin", [("Range", "bytes=1000-1999")], 206, BIG[1000:2000]),
        ("GET", f"{p}/big.bin", [("Range", "bytes=100000-")], 206, BIG[100000:]),
        ("GET", f"{p}/big.bin", [("Range", "bytes=0-1,10-11,-2")], 206, None),  # multipart/byteranges
        ("GET", f"{p}/small.txt", [("Range", "bytes=5-9"), ("If-Range", etag_small)], 206, SMALL[5:10]),
        ("GET", f"{p}/small.txt", [("Range", "bytes=5-9"), ("If-Range", '"stale"')], 200, SMALL),
        ("GET", f"{p}/small.txt", [("Range", "bytes=9999-")], 416, b""),
        ("GET", f"{p}/small.txt", [("If-Match", '"stale"')], 412, None),
        ("GET", f"{p}/style.css", [("Accept-Encoding", "gzip")], 200, GZIPPED),
        ("GET", f"{p}/", [], 200, INDEX),
        ("GET", f"{p}/dir", [], 301, None),
        ("GET", f"{p}/dir/", [], 200 if autoindex else 403, None),
        ("GET", f"{p}/missing.txt", [], 404, None),
        ("GET", f"{p}/.hidden", [], 404, None),
        ("POST", f"{p}/small.txt", [], 405, None),
        ("GET", f"{p}/dir/../small.txt", [], 200, SMALL),
        ("GET", f"{p}", [], 301, None),
    ]


def run_cases(make_request, clients, cases, count):
    """`count` requests, round robin over the cases and the keep-alive
    clients; every answer checked (status, body, connection kept)."""
    for i in range(count):
        method, target, headers, status, body = cases[i % len(cases)]
        client = clients[i % len(clients)]
        client.send(make_request(method, target, headers))
        response = client.read_response(method)
        assert response.status == status, (method, target, headers, response)
        if body is not None:
            assert response.body == body, (method, target, headers, response.body[:100])
        assert (response.header("Connection") or "").lower() != "close", (method, target, response)


def validators(make_request, client, target):
    """(ETag, Last-Modified) of a file, from a plain GET."""
    client.send(make_request("GET", target))
    response = client.read_response()
    assert response.status == 200, response
    return response.header("ETag"), response.header("Last-Modified")


def measure(make_request, server, calls, cases, count):
    """(baseline, delta): calls between two signals with nothing between,
    and calls between two signals with `count` requests between, on
    connections opened and warmed (each case once on each) beforehand."""
    clients = [server.connect(timeout=READ_TIMEOUT) for _ in range(CONNECTIONS)]
    try:
        run_cases(make_request, clients, cases, len(cases) * len(clients))
        c0 = calls()
        c1 = calls()
        run_cases(make_request, clients, cases, count)
        c2 = calls()
    finally:
        for client in clients:
            client.close()
    return c1 - c0, c2 - c1


@pytest.mark.parametrize("revalidate", ["1", "0"], ids=["revalidate-1s", "revalidate-every-request"])
def test_static_no_python_next_to_an_application_and_the_app_control(launch, root, make_request, revalidate):
    server, calls = launch({"static": [f"/static={root}"], "static_revalidate": revalidate}, with_app=True)
    with server.connect(timeout=READ_TIMEOUT) as client:
        etag_small, date_small = validators(make_request, client, "/static/small.txt")
        etag_big, _ = validators(make_request, client, "/static/big.bin")
    cases = static_cases("/static", etag_small, date_small, etag_big, autoindex=False)

    baseline, delta = measure(make_request, server, calls, cases, REQUESTS)
    assert delta == baseline, (f"{REQUESTS} static requests ran {delta - baseline} Python-level calls "
                               f"(baseline {baseline})")

    # control: the same worker, the same counter, requests to the application
    app_cases = [("GET", f"/app/{i}", [], 200, f"/app/{i}".encode()) for i in range(7)]
    baseline, delta = measure(make_request, server, calls, app_cases, REQUESTS)
    assert delta - baseline >= REQUESTS, f"{REQUESTS} application requests counted {delta - baseline} calls"


def test_static_no_python_without_an_application(launch, root, make_request):
    # no application: a location at /files with listings on, and a path
    # under no location answered 404 by the router itself
    server, calls = launch({"static": [f"/files={root}"], "autoindex": True}, with_app=False)
    with server.connect(timeout=READ_TIMEOUT) as client:
        etag_small, date_small = validators(make_request, client, "/files/small.txt")
        etag_big, _ = validators(make_request, client, "/files/big.bin")
    cases = static_cases("/files", etag_small, date_small, etag_big, autoindex=True)
    cases.append(("GET", "/elsewhere/small.txt", [], 404, b"404 Not Found\n"))

    baseline, delta = measure(make_request, server, calls, cases, REQUESTS)
    assert delta == baseline, (f"{REQUESTS} static requests ran {delta - baseline} Python-level calls "
                               f"(baseline {baseline})")


def test_static_no_python_counter_sees_calls_made_from_the_static_handler(launch, root, make_request, tmp_path):
    # control: with an access log the static handler calls AccessLog.log (Python)
    # for every request; those calls come from Cython code, as any other would
    server, calls = launch({"static": [f"/={root}"], "access_log": str(tmp_path / "access.log")}, with_app=False)
    cases = [("GET", "/small.txt", [], 200, SMALL), ("GET", "/missing.txt", [], 404, None)]
    baseline, delta = measure(make_request, server, calls, cases, REQUESTS)
    assert delta - baseline >= REQUESTS, f"{REQUESTS} logged static requests counted {delta - baseline} calls"
