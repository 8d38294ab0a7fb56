"""Fixtures of the end-to-end tests: real `fastcore serve` processes, real sockets.

`serve(app_source, *args)` writes the application source to a fresh
directory as `app.py`, starts `python -m fastcore serve app:app --bind
127.0.0.1:0 ARGS` there with the environment of the test process as it is,
waits for the readiness line on stderr (reading with a deadline, never
sleeping) and returns a `Server`. At teardown the server is stopped with
SIGTERM and must exit 0.

The server's stderr is a pipe that only the test reads (no thread): it is
widened to 1 MiB so the server never blocks on it, and `stderr_text()`
drains whatever the server has written so far without blocking.

Servers started here stop with `graceful_idle_timeout` at 0.1 s unless a
test sets it (`quick_idle_close`): a stopping worker gives an idle
keep-alive connection that long to bring one more request, and at the 1 s
default every test that leaves a client session open spent a second in its
teardown (about a third of the suite's time). Tests of that grace set the
flag themselves.

`no_fd_leak` compares the test process's open descriptors before and after
each test; `serve` depends on it, so servers (and their pipes) are gone by
the time it counts.
"""
import fcntl
import gc
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time

import pytest

READY = re.compile(r"^fastcore: listening on (\S+) \(pid (\d+)\)$", re.M)
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
F_SETPIPE_SZ = 1031


def _open_fds():
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # the descriptor listdir itself used
            pass
    return fds


def descriptors(pid):
    """What each of pid's descriptors points to, as /proc/PID/fd reads."""
    found = []
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            found.append(os.readlink(f"/proc/{pid}/fd/{name}"))
        except OSError:  # closed meanwhile
            pass
    return found


@pytest.fixture(autouse=True)
def quick_idle_close(monkeypatch):
    """Servers of the test inherit FASTCORE_GRACEFUL_IDLE_TIMEOUT=0.1 (see
    the module docstring); a flag on the command line still wins."""
    if "FASTCORE_GRACEFUL_IDLE_TIMEOUT" not in os.environ:
        monkeypatch.setenv("FASTCORE_GRACEFUL_IDLE_TIMEOUT", "0.1")


@pytest.fixture(autouse=True)
def no_fd_leak():
    gc.collect()
    before = _open_fds()
    yield
    gc.collect()
    after = _open_fds()
    leaked = {fd: target for fd, target in after.items() if before.get(fd) != target}
    assert not leaked, f"file descriptors leaked by the test: {leaked}"


class Response:
    """One HTTP response as read from a raw socket."""

    def __init__(self, version, status, reason, headers, body):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # [(name, value)] as received
        self.body = body

    def header(self, name, default=None):
        values = self.header_all(name)
        return values[0] if values else default

    def header_all(self, name):
        return [value for key, value in self.headers if key.lower() == name.lower()]

    def __repr__(self):
        return f"<Response {self.status} {self.headers!r} {self.body[:200]!r}>"


class RawClient:
    """A TCP (or unix) socket with a read buffer and a small response reader of
    its own, so pipelined responses can be taken one at a time."""

    def __init__(self, sock, timeout=10.0):
        self.sock = sock
        self.sock.settimeout(timeout)
        self.buffer = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed by the server")
        self.buffer += data

    def _read_line(self):
        while b"\r\n" not in self.buffer:
            self._fill()
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def _read_exactly(self, n):
        while len(self.buffer) < n:
            self._fill()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def read_head(self):
        """(version, status, reason, headers) of the next response head."""
        version, status, reason = self._read_line().decode("latin-1").split(" ", 2)
        headers = []
        while True:
            line = self._read_line()
            if not line:
                return version, int(status), reason, headers
            name, _, value = line.decode("latin-1").partition(":")
            headers.append((name, value.strip(" \t")))

    def read_response(self, method="GET"):
        version, status, reason, headers = self.read_head()
        response = Response(version, status, reason, headers, b"")
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return response
        encoding = response.header("Transfer-Encoding")
        length = response.header("Content-Length")
        if encoding is not None:
            assert encoding.lower() == "chunked", response
            parts = []
            while True:
                size = int(self._read_line().split(b";")[0], 16)
                if size == 0:
                    while self._read_line():  # trailers
                        pass
                    break
                parts.append(self._read_exactly(size))
                assert self._read_exactly(2) == b"\r\n"
            response.body = b"".join(parts)
        elif length is not None:
            response.body = self._read_exactly(int(length))
        else:
            response.body = self.read_until_closed()
        return response

    def read_until_closed(self, timeout=10.0):
        """Everything until the server closes; fails if it does not within timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"the server did not close the connection in {timeout} s")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                data, self.buffer = self.buffer, b""
                return data
            self.buffer += data

    def assert_open(self, wait=0.2):
        """The server has neither closed nor sent anything within `wait` seconds."""
        ready, _, _ = select.select([self.sock], [], [], wait)
        assert not ready, f"connection unexpectedly readable: {self.sock.recv(65536)!r}"


def request_bytes(method="GET", target="/", headers=(), body=b"", version="HTTP/1.1", host=True):
    lines = [f"{method} {target} {version}"]
    if host:
        lines.append("Host: 127.0.0.1")
    lines.extend(f"{name}: {value}" for name, value in headers)
    if body and not any(name.lower() in ("content-length", "transfer-encoding") for name, _ in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Server:
    """A running `fastcore serve` process."""

    def __init__(self, proc, directory):
        self.proc = proc
        self.dir = directory
        self._stderr = b""
        self._fd = proc.stderr.fileno()
        os.set_blocking(self._fd, False)
        self.urls = []
        self.stopped = False
        self.killed = False  # needed kill -9 after SIGTERM

    @property
    def pid(self):
        return self.proc.pid

    @property
    def url(self):
        return self.urls[0]

    @property
    def port(self):
        return int(self.url.rsplit(":", 1)[1])

    def _drain(self, timeout=0.0):
        """Reads what stderr holds; waits up to `timeout` for something to arrive."""
        got = False
        while True:
            ready, _, _ = select.select([self._fd], [], [], 0 if got else timeout)
            if not ready:
                return got
            try:
                data = os.read(self._fd, 1 << 20)
            except BlockingIOError:
                return got
            if not data:
                return got
            self._stderr += data
            got = True

    def stderr_text(self):
        """Everything the server wrote to stderr so far."""
        if not self.proc.stderr.closed:
            self._drain()
        return self._stderr.decode("utf-8", "replace")

    def wait_for_stderr(self, pattern, timeout=5.0):
        """Waits until `pattern` (a regex) matches the stderr text; returns the match."""
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.stderr_text())
            if match:
                return match
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None and not self._drain(0):
                raise AssertionError(f"{pattern!r} not in stderr within {timeout} s:\n{self.stderr_text()}")
            self._drain(min(left, 0.1))

    def wait_ready(self, binds):
        deadline = time.monotonic() + START_TIMEOUT
        while len(READY.findall(self._stderr.decode("utf-8", "replace"))) < binds:
            if time.monotonic() > deadline:
                raise AssertionError(f"server not ready in {START_TIMEOUT} s:\n{self.stderr_text()}")
            if not self._drain(0.1) and self.proc.poll() is not None:
                self._drain()
                raise AssertionError(f"server exited with {self.proc.returncode} before being ready:\n"
                                     f"{self.stderr_text()}")
        self.urls = [url for url, _ in READY.findall(self._stderr.decode("utf-8", "replace"))]

    def connect(self, url=None, timeout=10.0):
        """A RawClient connected to the first (or the given) listening address."""
        url = url or self.url
        if url.startswith("unix:"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(url[len("unix:"):])
        else:
            host, port = url[len("http://"):].rsplit(":", 1)
            sock = socket.create_connection((host, int(port)), timeout=timeout)
        return RawClient(sock, timeout)

    def request(self, method="GET", target="/", headers=(), body=b"", **kwargs):
        """One request on a new connection; returns the Response."""
        with self.connect() as client:
            client.send(request_bytes(method, target, headers, body, **kwargs))
            return client.read_response(method)

    def rss_kib(self):
        """RSS of the arbiter and its workers (the memory that serves requests
        is in the workers)."""
        children = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as stat:
                        ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
                    children.setdefault(ppid, []).append(int(entry))
                except (OSError, ValueError, IndexError):
                    pass
        total, todo = 0, [self.pid]
        while todo:
            pid = todo.pop()
            todo.extend(children.get(pid, []))
            try:
                with open(f"/proc/{pid}/status") as status:
                    total += next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
            except (OSError, StopIteration):
                pass
        assert total, "no VmRSS"
        return total

    def stop(self):
        """SIGTERM, wait (kill -9 after STOP_TIMEOUT); returns the exit status."""
        if not self.stopped:
            self.stopped = True
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT
            while self.proc.poll() is None and time.monotonic() < deadline:
                self._drain(0.05)  # keep reading so the server never blocks on stderr
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
                self.killed = True
            self._drain()
            self.proc.stderr.close()
        return self.proc.returncode


def stop_all(servers):
    """Teardown: stops every server; those the test did not stop itself must exit 0."""
    statuses = [(server, server.stopped, server.stop()) for server in servers]
    for server, stopped_by_test, status in statuses:
        if not stopped_by_test:
            assert status == 0, f"server exited {status} after SIGTERM:\n{server.stderr_text()}"


def serve_error_line(directory, *args):
    """Runs `fastcore serve ARGS` in directory, which must refuse to start
    with exactly one line, `fastcore: error: ...`; returns that line."""
    out = subprocess.run([sys.executable, "-m", "fastcore", "serve", *args], cwd=directory, stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=30)
    lines = out.stderr.strip().splitlines()
    assert out.returncode != 0 and len(lines) == 1 and lines[0].startswith("fastcore: error: "), out.stderr
    return lines[0]


def start_server(directory, app_spec="app:app", args=(), binds=None):
    """Starts `fastcore serve` in `directory`; returns a ready Server."""
    args = list(args)
    if not any(a == "--bind" or a.startswith("--bind=") or a == "-b" for a in args):
        args = ["--bind", "127.0.0.1:0"] + args
    if binds is None:
        binds = sum(1 for a in args if a in ("--bind", "-b") or a.startswith("--bind="))
    command = [sys.executable, "-m", "fastcore", "serve", *([app_spec] if app_spec else []), *args]
    proc = subprocess.Popen(command, cwd=directory, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        fcntl.fcntl(proc.stderr.fileno(), F_SETPIPE_SZ, 1 << 20)
    except OSError:
        pass
    server = Server(proc, directory)
    try:
        server.wait_ready(binds)
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture
def serve(tmp_path, no_fd_leak):
    """Factory: serve(app_source, *args, app="app:app", files=None) -> Server.

    Each server gets its own directory (Server.dir) holding app.py and any
    `files` ({name: text}); the app can find it as os.path.dirname(__file__).
    """
    servers = []

    def start(app_source, *args, app="app:app", files=None, binds=None):
        directory = tmp_path / f"server{len(servers)}"
        directory.mkdir()
        (directory / "app.py").write_text(app_source)
        for name, text in (files or {}).items():
            (directory / name).write_text(text)
        server = start_server(directory, app, args, binds)
        servers.append(server)
        return server

    yield start
    stop_all(servers)


@pytest.fixture
def serve_files(no_fd_leak):
    """Factory: serve_files(directory, *args) -> Server running `fastcore
    serve ARGS` with no application, started in `directory` (so with no
    --static it serves that directory at /); stopped at teardown, must exit 0."""
    servers = []

    def start(directory, *args, binds=None):
        server = start_server(directory, None, args, binds)
        servers.append(server)
        return server

    yield start
    stop_all(servers)


@pytest.fixture
def make_request():
    """request_bytes(method, target, headers, body, version, host) -> the bytes of a request."""
    return request_bytes


@pytest.fixture(scope="module")
def serve_shared(tmp_path_factory):
    """Like `serve`, but the servers live for the whole test module (for
    parametrized tests that all talk to one server); same teardown check."""
    servers = []

    def start(app_source, *args, app="app:app"):
        directory = tmp_path_factory.mktemp("shared")
        (directory / "app.py").write_text(app_source)
        server = start_server(directory, app, args)
        servers.append(server)
        return server

    yield start
    statuses = [(server, server.stop()) for server in servers]
    for server, status in statuses:
        assert status == 0, f"server exited {status} after SIGTERM:\n{server.stderr_text()}"


@pytest.fixture
def adopt(no_fd_leak):
    """Factory: adopt(proc, directory, binds=1) -> a ready Server for a
    `fastcore serve` process the test started itself (for instance through a
    launcher that execs it); stopped with SIGTERM at teardown, must exit 0."""
    servers = []

    def wrap(proc, directory, binds=1):
        server = Server(proc, directory)
        servers.append(server)
        server.wait_ready(binds)
        return server

    yield wrap
    for server in servers:
        stopped_by_test = server.stopped
        status = server.stop()
        if not stopped_by_test:
            assert status == 0, f"server exited {status} after SIGTERM:\n{server.stderr_text()}"
