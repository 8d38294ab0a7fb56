"""`fastcore serve` as a command: start-up failures, several listeners, unix
sockets, and stopping with SIGTERM."""
import http.client
import select
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

HELLO_APP = '''
import os
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def app(environ, start_response):
    if environ["PATH_INFO"] == "/sleep":
        with open(os.path.join(HERE, "sleep.log"), "a") as f:
            f.write("started\\n")
        time.sleep(2)
        body = b"slept"
    else:
        body = b"hello " + environ["PATH_INFO"].encode("latin-1")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def run_serve(cwd, *args, timeout=30):
    return subprocess.run([sys.executable, "-m", "fastcore", "serve", *args], cwd=cwd,
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)


def test_serve_unimportable_module_one_line(tmp_path):
    done = run_serve(tmp_path, "no_such_module_here:app", "--bind", "127.0.0.1:0")
    assert done.returncode == 1
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert "no_such_module_here" in lines[0]
    assert "Traceback" not in done.stderr.decode()


def test_serve_module_raising_at_import_shows_traceback(tmp_path):
    (tmp_path / "broken.py").write_text("def helper():\n    raise RuntimeError('boom at import')\n\nhelper()\n")
    done = run_serve(tmp_path, "broken:app", "--bind", "127.0.0.1:0")
    assert done.returncode == 1
    text = done.stderr.decode()
    assert "Traceback (most recent call last)" in text
    assert "RuntimeError: boom at import" in text
    assert "broken.py" in text


def test_serve_two_binds_both_answer(serve):
    # Two loopback addresses (all of 127.0.0.0/8 is local): the same address twice is refused.
    server = serve(HELLO_APP, "--bind", "127.0.0.1:0", "--bind", "127.0.0.2:0")
    assert len(server.urls) == 2
    assert len(set(server.urls)) == 2
    for url in server.urls:
        with server.connect(url) as client:
            client.send(b"GET /both HTTP/1.1\r\nHost: x\r\n\r\n")
            response = client.read_response()
            assert (response.status, response.body) == (200, b"hello /both")


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def test_serve_unix_socket_answers(serve, tmp_path):
    path = tmp_path / "s.sock"
    server = serve(HELLO_APP, "--bind", f"unix:{path}")
    assert server.url == f"unix:{path}"
    connection = UnixHTTPConnection(str(path))
    try:
        for i in range(3):  # keep-alive over the unix socket too
            connection.request("GET", f"/unix/{i}")
            response = connection.getresponse()
            assert (response.status, response.read()) == (200, f"hello /unix/{i}".encode())
    finally:
        connection.close()
    curl = shutil.which("curl")
    assert curl, "curl is a test dependency and must be installed"
    got = subprocess.run([curl, "-s", "--max-time", "10", "--unix-socket", str(path), "http://localhost/curl"],
                         capture_output=True, timeout=20)
    assert got.stdout == b"hello /curl"
    assert server.stop() == 0
    assert not path.exists(), "the unix socket file is left behind"


def test_serve_port_in_use_one_line(tmp_path):
    (tmp_path / "app.py").write_text(HELLO_APP)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        address = "127.0.0.1:%d" % taken.getsockname()[1]
        done = run_serve(tmp_path, "app:app", "--bind", address)
    assert done.returncode == 1
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert address in lines[0]
    assert "Traceback" not in lines[0]


@pytest.mark.parametrize("threads", [1, 4], ids=["threads1", "threads4"])
def test_serve_sigterm_lets_inflight_request_finish(serve, threads):
    server = serve(HELLO_APP, "--threads", str(threads))
    with server.connect() as client:
        client.send(b"GET /sleep HTTP/1.1\r\nHost: x\r\n\r\n")
        log = server.dir / "sleep.log"
        deadline = time.monotonic() + 5
        while not (log.exists() and log.read_text()):
            assert time.monotonic() < deadline, "the application never started the request"
            select.select([], [], [], 0.02)
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        response = client.read_response()
        assert (response.status, response.body) == (200, b"slept")
        assert time.monotonic() - started < 5
    deadline = time.monotonic() + 10
    while server.proc.poll() is None and time.monotonic() < deadline:
        select.select([], [], [], 0.05)
    assert server.proc.returncode == 0, server.stderr_text()
    assert server.stop() == 0


def exit_status_after_sigterm(server, timeout):
    """SIGTERM to the server; its exit status, or None if it has not exited
    within timeout seconds."""
    server.proc.send_signal(signal.SIGTERM)
    try:
        return server.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def test_serve_sigterm_with_no_connection_does_not_wait_out_the_idle_grace(serve):
    """--graceful-idle-timeout is for idle keep-alive connections: a worker
    with none left exits at once, while one that holds an idle connection
    keeps it for the grace (a request on it is still answered)."""
    server = serve(HELLO_APP, "--graceful-idle-timeout", "30")
    assert server.request("GET", "/").status == 200  # its connection closed by the client
    status = exit_status_after_sigterm(server, 10)
    assert status == 0, f"no exit 10 s after SIGTERM with no connection open:\n{server.stderr_text()}"
    server.stop()

    server = serve(HELLO_APP, "--graceful-idle-timeout", "30")
    with server.connect() as client:
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.read_response().status == 200
        assert exit_status_after_sigterm(server, 1.5) is None  # the idle connection holds the worker
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        response = client.read_response()
        assert response.status == 200 and response.header("Connection") == "close"
    assert server.proc.wait(timeout=10) == 0
    server.stop()


def test_serve_sigterm_right_after_requests_stops(serve):
    """A SIGTERM that lands while the loop is busy (not inside epoll_wait)
    must still stop the server; several rounds make the timing likely."""
    for round_number in range(8):
        server = serve(HELLO_APP)
        for _ in range(3):
            assert server.request("GET", "/").status == 200
        status = exit_status_after_sigterm(server, 3)
        assert status == 0, f"round {round_number}: no exit 3 s after SIGTERM:\n{server.stderr_text()}"
        server.stop()
