"""The arbiter end to end: real `fastcore serve` processes with several
workers, real signals, real clients, and the admin listener as the window
on what the arbiter believes.

Every wait is a bounded poll (a deadline, short select() pauses), never a
fixed sleep. The application answers with its worker's pid, so a test sees
which process served each request.
"""
import collections
import http.client
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import descriptors, request_bytes

APP = '''
import os
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def spin_forever():
    while True:
        pass


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/spin":
        spin_forever()
    elif path == "/sleep":
        with open(os.path.join(HERE, "sleep.log"), "a") as f:
            f.write("started\\n")
        time.sleep(2)
    elif path == "/block" and environ["QUERY_STRING"] == str(os.getpid()):
        time.sleep(5)  # only the worker that was asked for blocks
    status = "404 Not Found" if path == "/missing" else "200 OK"
    body = str(os.getpid()).encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''

# Two versions of one application for the reload tests. Their sizes differ on
# purpose: a .pyc is reused when the source has the same mtime (whole seconds)
# and the same size, and both versions are written within one second.
VERSION_1 = '''
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"v1"]
'''
VERSION_2 = VERSION_1.replace('b"v1"', 'b"v2"') + "# reloaded\n"

MODES = [pytest.param("--reuse-port", id="reuse-port"), pytest.param("--no-reuse-port", id="shared")]
ADMIN = re.compile(r"fastcore: admin on http://127\.0\.0\.1:(\d+) \(pid (\d+)\)")


def pause(seconds=0.02):
    select.select([], [], [], seconds)


def wait_until(probe, timeout, what):
    """Polls probe() until it returns something true; returns that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s (last: {value!r})")
        pause()


def get(port, path="/", timeout=5.0):
    """One GET on a new connection (Connection: close); returns (status, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Connection": "close"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def worker_pid(server, path="/"):
    status, body = get(server.port, path)
    assert status in (200, 404), (status, body)
    return int(body)


def parent_pid(pid):
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def children(pid):
    """The pids of pid's child processes."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if parent_pid(int(entry)) == pid:
                    found.add(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return found


class Admin:
    """The admin listener of a server started with --admin 127.0.0.1:0."""

    def __init__(self, server):
        match = server.wait_for_stderr(ADMIN.pattern)
        assert int(match.group(2)) == server.pid, "the admin line names another pid than the arbiter's"
        self.port = int(match.group(1))

    def get(self, path):
        return get(self.port, path)

    def status(self):
        code, body = self.get("/status")
        assert code == 200, (code, body)
        return json.loads(body)

    def worker_pids(self):
        return {worker["pid"] for worker in self.status()["workers"]}

    def metrics(self):
        code, body = self.get("/metrics")
        assert code == 200, (code, body)
        samples = {}
        for family in text_string_to_metric_families(body.decode("utf-8")):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples


def sample_sum(samples, name):
    return sum(value for (sample_name, _), value in samples.items() if sample_name == name)


def wait_exit(server, timeout):
    """Waits for the arbiter to exit (reading its stderr meanwhile); returns its status."""
    deadline = time.monotonic() + timeout
    while server.proc.poll() is None and time.monotonic() < deadline:
        server._drain(0.05)
    assert server.proc.poll() is not None, f"the arbiter did not exit within {timeout} s:\n{server.stderr_text()}"
    return server.stop()


# -- workers and balancing -------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_arbiter_two_workers_serve_from_two_pids(serve, mode):
    server = serve(APP, "--workers", "2", mode)
    seen = set()
    for _ in range(200):
        seen.add(worker_pid(server))
        if len(seen) == 2:
            break
    assert len(seen) == 2, f"only {seen} answered 200 new connections"
    assert server.pid not in seen, "the arbiter itself served a request"
    assert {parent_pid(pid) for pid in seen} == {server.pid}, "the workers are not the arbiter's children"


# The default (shared socket) balances by itself: the kernel wakes only a
# worker waiting in epoll_wait and each listener requeues itself after
# accepting, so idle workers take turns. Reuse-port hashes connections.
@pytest.mark.parametrize("mode", MODES)
def test_arbiter_balances_short_connections(serve, mode):
    server = serve(APP, "--workers", "2", mode)
    counts = {}
    for _ in range(400):
        pid = worker_pid(server)
        counts[pid] = counts.get(pid, 0) + 1
    split = sorted(counts.values(), reverse=True)
    print(f"\nbalancing {mode}: {split} of 400 connections")
    assert sum(split) == 400
    assert len(split) == 2 and split[0] <= 0.70 * 400, f"{mode}: one worker took {split[0]} of 400 ({split})"


def answered_within(port, path, timeout):
    """A GET on a new connection answered 200 within timeout seconds."""
    try:
        status, _ = get(port, path, timeout=timeout)
        return status == 200
    except OSError:
        return False


def test_arbiter_stuck_worker_gets_no_new_connections(serve):
    """One of two workers spins in its application (inline); new connections
    go to the other at once. With reuse-port, half of them would wait until
    the stuck worker is killed."""
    server = serve(APP, "--workers", "2", "--timeout", "10", "--threads", "1")
    with server.connect() as stuck:
        stuck.send(request_bytes("GET", "/spin"))
        pause(0.3)
        answered = 0
        for _ in range(20):
            answered += answered_within(server.port, "/", 0.2)
            pause(0.1)
        assert answered >= 18, f"only {answered} of 20 new connections answered within 200 ms"
        assert server.proc.poll() is None


def test_arbiter_refuses_a_port_another_server_listens_on(serve, tmp_path):
    """A second server on the same port would silently take a share of the
    traffic (every SO_REUSEPORT socket of a user joins one group): refused."""
    first = serve(APP)
    for mode in ("--reuse-port", "--no-reuse-port"):
        proc = subprocess.run([sys.executable, "-m", "fastcore", "serve", "app:app", "--bind",
                               f"127.0.0.1:{first.port}", mode], cwd=first.dir, capture_output=True,
                              text=True, timeout=30, stdin=subprocess.DEVNULL)
        assert proc.returncode == 1, proc.stderr
        assert f"cannot listen on 127.0.0.1:{first.port}: address already in use" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert all(worker_pid(first) for _ in range(10))


# -- supervision -------------------------------------------------------------------


def test_arbiter_replaces_killed_worker(serve):
    server = serve(APP, "--workers", "2", "--admin", "127.0.0.1:0")
    admin = Admin(server)
    before = admin.worker_pids()
    assert len(before) == 2
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()

    def new_pid_serves():
        pid = worker_pid(server)
        return pid if pid not in before else None

    newcomer = wait_until(new_pid_serves, 2.0, "a new worker serving after kill -9")
    assert time.monotonic() - killed < 2.0
    after = wait_until(lambda: len(admin.worker_pids()) == 2 and admin.worker_pids(), 2.0, "/status with 2 workers")
    assert victim not in after and newcomer in after and len(after & before) == 1, (before, after)
    server.wait_for_stderr(rf"worker {victim} was killed by SIGKILL", timeout=2.0)
    restarts = {worker["pid"]: worker["restarts"] for worker in admin.status()["workers"]}
    assert restarts == {newcomer: 1, (after & before).pop(): 0}, restarts
    assert admin.metrics()[("fastcore_worker_restarts_total", ())] == 1


@pytest.mark.parametrize("slot", [0, 1])
def test_arbiter_replacement_takes_over_dead_workers_queue(serve, slot):
    # README: "the arbiter keeps the slot's socket, so the worker that replaces
    # a dead ... one takes over its queue and no waiting connection is lost".
    server = serve(APP, "--workers", "2", "--reuse-port", "--log-level", "debug")
    victim = int(server.wait_for_stderr(rf"spawned worker (\d+) \(slot {slot}\)").group(1))
    # Block the victim inside the application: it stops accepting, so new
    # connections that the kernel gives its socket wait in that socket's queue.
    blocker = None
    for _ in range(100):
        client = server.connect(timeout=5.0)
        client.send(f"GET /block?{victim} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        if select.select([client.sock], [], [], 0.3)[0]:
            client.close()  # another worker answered at once: try again
            continue
        blocker = client
        break
    assert blocker is not None, "no connection reached the victim worker"
    waiting = []
    try:
        for _ in range(24):
            client = server.connect(timeout=5.0)
            waiting.append(client)
            client.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        pause(0.2)
        os.kill(victim, signal.SIGKILL)
        answered, lost = [], []
        for client in waiting:
            try:
                response = client.read_response()
                answered.append(int(response.body))
            except (OSError, EOFError) as e:
                lost.append(repr(e))
    finally:
        blocker.close()
        for client in waiting:
            client.close()
    assert not lost, f"{len(lost)} of {len(waiting)} waiting connections lost when worker {victim} died: {lost[:3]}"
    assert victim not in answered
    assert len(set(answered)) == 2, f"the replacement served none of the waiting connections: {answered}"


# threads 4: the loop keeps turning while an application thread is stuck;
# the worker must still give itself up once that request passes --timeout
@pytest.mark.parametrize("threads", ["1", "4"])
def test_arbiter_kills_stuck_worker_and_dumps_its_stack(serve, threads):
    server = serve(APP, "--workers", "1", "--timeout", "2", "--admin", "127.0.0.1:0", "--threads", threads)
    admin = Admin(server)
    stuck = worker_pid(server)
    with server.connect(timeout=10.0) as client:
        client.send(b"GET /spin HTTP/1.1\r\nHost: x\r\n\r\n")
        sent = time.monotonic()
        client.assert_open(wait=1.5)  # the request hangs
        try:
            leftover = client.read_until_closed(timeout=6.0)
        except ConnectionResetError:
            leftover = b""
        closed_after = time.monotonic() - sent
    assert leftover == b"", f"the stuck request got an answer: {leftover!r}"
    assert 1.9 <= closed_after < 6.0, f"the stuck worker's connection closed after {closed_after:.1f} s"
    server.wait_for_stderr(rf"worker {stuck} is stuck", timeout=2.0)
    server.wait_for_stderr(r"line \d+ in spin_forever", timeout=2.0)  # faulthandler's dump of its stack
    server.wait_for_stderr(rf"worker {stuck} was killed by SIG(ABRT|KILL)", timeout=4.0)
    replacement = worker_pid(server)
    assert replacement != stuck
    metrics = admin.metrics()
    assert metrics[("fastcore_worker_timeouts_total", ())] == 1
    # killed for being stuck and replaced: a restart too, in /metrics and in its slot's count
    assert metrics[("fastcore_worker_restarts_total", ())] == 1
    assert [(w["pid"], w["restarts"]) for w in admin.status()["workers"]] == [(replacement, 1)]


def tcp_inodes(local_port, remote_port=None):
    """Inodes of the IPv4 TCP sockets on local_port (to remote_port, when given)."""
    inodes = set()
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if int(local.split(":")[1], 16) == local_port and (
                    remote_port is None or int(remote.split(":")[1], 16) == remote_port):
                inodes.add(inode)
    return inodes


def test_arbiter_workers_hold_none_of_the_arbiters_descriptors(serve):
    server = serve(APP, "--workers", "1", "--admin", "127.0.0.1:0", "--log-level", "debug")
    admin = Admin(server)
    (first,) = admin.worker_pids()
    client = http.client.HTTPConnection("127.0.0.1", admin.port, timeout=5.0)
    try:
        client.request("GET", "/metrics")
        response = client.getresponse()
        assert response.status == 200 and response.read()  # and the connection stays open
        admin_sockets = tcp_inodes(admin.port)  # its listener and the arbiter's end of this connection
        assert tcp_inodes(admin.port, client.sock.getsockname()[1]), "no arbiter end for the admin connection"
        # the arbiter's signal pipe is the one pipe it holds both ends of
        held = collections.Counter(target for target in descriptors(server.pid) if target.startswith("pipe:"))
        arbiter_pipes = {target for target, count in held.items() if count == 2}
        assert len(arbiter_pipes) == 1, held
        server.proc.send_signal(signal.SIGTTIN)  # a worker forked while the admin connection is open
        newcomer = wait_until(lambda: (lambda new: len(new) == 1 and new.pop())(admin.worker_pids() - {first}),
                              3.0, "a second worker after TTIN")
        server.wait_for_stderr(rf"worker {newcomer} booted", timeout=5.0)
        for pid in (first, newcomer):
            targets = descriptors(pid)
            # its own loop's epoll instance and eventfd, and no other (the arbiter's loop has one of each)
            assert targets.count("anon_inode:[eventpoll]") == 1, (pid, targets)
            assert targets.count("anon_inode:[eventfd]") == 1, (pid, targets)
            assert not arbiter_pipes & set(targets), (pid, "the arbiter's signal pipe", targets)
            leaked = {target for target in targets if target[len("socket:["):-1] in admin_sockets}
            assert not leaked, (pid, "admin sockets", leaked, targets)
        client.request("GET", "/health")  # the arbiter still serves the connection
        assert client.getresponse().read() == b"ok\n"
    finally:
        client.close()


# -- start-up failures ---------------------------------------------------------------


def run_serve(cwd, *args, timeout=15):
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "fastcore", "serve", *args, "--bind", "127.0.0.1:0"],
                          cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, timeout=timeout)
    return done, time.monotonic() - started


def test_arbiter_exits_when_workers_cannot_import_app(tmp_path):
    (tmp_path / "app.py").write_text("import no_such_dependency_xyz\n\n" + VERSION_1)
    done, elapsed = run_serve(tmp_path, "app:app", "--workers", "2")
    text = done.stderr.decode()
    assert done.returncode != 0, text
    assert elapsed < 5.0, f"the arbiter took {elapsed:.1f} s to give up"
    lines = text.splitlines()
    assert lines and lines[-1].startswith("fastcore: error:"), text
    assert "no_such_dependency_xyz" in lines[-1]
    assert text.count("fastcore: error:") == 1, text
    assert "listening on" not in text


def test_arbiter_misspelled_module_exits_1_with_one_line(tmp_path):
    (tmp_path / "app.py").write_text(VERSION_1)
    done, elapsed = run_serve(tmp_path, "apq:app", "--workers", "2")
    lines = done.stderr.decode().splitlines()
    assert done.returncode == 1, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith("fastcore: error:") and "apq" in lines[0], lines
    assert elapsed < 5.0


# -- reload ------------------------------------------------------------------------------


def reload_under_load(server, request, count):
    """Runs `count` requests in a thread, reloads with VERSION_2 once it has
    seen v1; returns (bodies, errors)."""
    bodies, errors = [], []

    def client():
        for i in range(count):
            try:
                status, body = request()
            except Exception as e:  # every failure is a finding: keep them all
                errors.append(f"request {i}: {e!r}")
                continue
            if status != 200:
                errors.append(f"request {i}: status {status} {body!r}")
            bodies.append(body)

    thread = threading.Thread(target=client)
    thread.start()
    try:
        wait_until(lambda: len(bodies) >= 100, 10.0, "the client's first 100 requests")
        (server.dir / "app.py").write_text(VERSION_2)
        server.proc.send_signal(signal.SIGHUP)
        server.wait_for_stderr(r"reload done", timeout=10.0)
    finally:
        thread.join(60.0)
    assert not thread.is_alive(), "the client thread did not finish"
    return bodies, errors


@pytest.mark.parametrize("mode", MODES)
def test_arbiter_reload_serves_new_code_without_failing_new_connections(serve, mode):
    server = serve(VERSION_1, "--workers", "2", mode)
    # a loopback request takes milliseconds: after 3 s nobody is going to accept it
    bodies, errors = reload_under_load(server, lambda: get(server.port, timeout=3.0), 2000)
    assert not errors, f"{len(errors)} of 2000 requests failed during the reload: {errors[:5]}"
    assert set(bodies) == {b"v1", b"v2"}, set(bodies)
    assert get(server.port) == (200, b"v2")


def test_arbiter_reload_keep_alive_session_sees_no_error(serve):
    server = serve(VERSION_1, "--workers", "2")
    with requests.Session() as session:
        url = f"{server.url}/"

        def request():
            response = session.get(url, timeout=3)
            return response.status_code, response.content

        bodies, errors = reload_under_load(server, request, 2000)
    assert not errors, f"{len(errors)} of 2000 keep-alive requests failed during the reload: {errors[:5]}"
    assert set(bodies) == {b"v1", b"v2"}, set(bodies)


# Every new worker of a bad reload fails to import the application; the
# first failure ends the reload, and the others (one per worker beyond the
# first) must not be taken for a failure at start-up.
@pytest.mark.parametrize("workers", ["1", "2", "4"])
def test_arbiter_failed_reload_keeps_old_workers_serving(serve, workers):
    server = serve(VERSION_1, "--workers", workers)
    old = wait_until(lambda: (lambda pids: len(pids) == int(workers) and pids)(children(server.pid)), 5.0,
                     f"{workers} workers")
    (server.dir / "app.py").write_text("def app(environ, start_response:\n")  # a syntax error
    server.proc.send_signal(signal.SIGHUP)
    server.wait_for_stderr(r"reload failed: .*SyntaxError.*; the previous workers keep serving", timeout=10.0)
    # every new worker is gone (each failed, or was stopped by the first failure)
    wait_until(lambda: server.proc.poll() is not None or children(server.pid) == old, 10.0,
               "only the old workers left")
    assert server.proc.poll() is None, f"the arbiter exited after a failed reload:\n{server.stderr_text()}"
    for _ in range(20):
        assert get(server.port) == (200, b"v1")
    assert "fastcore: error:" not in server.stderr_text()

    (server.dir / "app.py").write_text(VERSION_2)
    server.proc.send_signal(signal.SIGHUP)
    server.wait_for_stderr(r"reload done", timeout=10.0)
    # an old worker may still take a connection while it begins to drain
    wait_until(lambda: not children(server.pid) & old, 10.0, "the old workers gone after the second reload")
    for _ in range(20):
        assert get(server.port) == (200, b"v2")


# -- signals --------------------------------------------------------------------------------


def test_arbiter_term_lets_inflight_request_finish(serve):
    server = serve(APP, "--workers", "2")
    with server.connect(timeout=10.0) as client:
        client.send(b"GET /sleep HTTP/1.1\r\nHost: x\r\n\r\n")
        log = server.dir / "sleep.log"
        wait_until(lambda: log.exists() and log.read_text(), 5.0, "the application starting /sleep")
        server.proc.send_signal(signal.SIGTERM)
        termed = time.monotonic()
        response = client.read_response()
    assert response.status == 200, response
    assert time.monotonic() - termed < 5.0
    assert wait_exit(server, 5.0) == 0, server.stderr_text()
    assert "killed by" not in server.stderr_text()


def test_arbiter_repeated_term_while_stopping_still_exits_0(serve):
    """Supervisors (and impatient operators) repeat SIGTERM: every one that
    lands while the arbiter stops, even during the interpreter's exit, must
    leave its exit status 0, never a death by signal."""
    server = serve(APP, "--workers", "1")
    pid = server.proc.pid
    deadline = time.monotonic() + 10.0
    while server.proc.poll() is None and time.monotonic() < deadline:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            break
        server._drain(0.001)
    assert wait_exit(server, 5.0) == 0, server.stderr_text()


SELF_TERM_APP = '''
import os
import signal


def stream():
    for i in range(4):
        if i == 2:
            # its handler runs at the next bytecode, here, inside the application
            os.kill(os.getpid(), signal.SIGTERM)
        yield bytes([97 + i]) * 32768


def app(environ, start_response):
    if environ["PATH_INFO"] == "/term":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return stream()
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def test_worker_acts_on_a_signal_between_events_not_inside_the_application(serve):
    # SIGTERM arrives while an inline application produces its response: the
    # response is made as if no signal had come (all of its body; and the
    # request pipelined behind it, already received, is answered too), then
    # the worker stops gracefully.
    server = serve(SELF_TERM_APP, "--workers", "1")
    with server.connect(timeout=10.0) as client:
        client.send(b"GET /term HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        first = client.read_response()
        assert first.status == 200 and first.body == b"".join(bytes([97 + i]) * 32768 for i in range(4)), first
        second = client.read_response()
        assert second.status == 200, second
        worker = int(second.body)
    server.wait_for_stderr(rf"\[{worker}\] \[INFO\] worker stopping \(SIGTERM\)", timeout=5.0)
    server.wait_for_stderr(rf"worker {worker} stopped after 2 requests", timeout=5.0)
    server.wait_for_stderr(rf"worker {worker} exited with status 0", timeout=5.0)


def test_arbiter_ttin_ttou_change_worker_count(serve):
    server = serve(APP, "--workers", "2", "--admin", "127.0.0.1:0")
    admin = Admin(server)

    def live_workers(count):
        def probe():
            workers = admin.status()["workers"]
            ready = [w for w in workers if not w["draining"] and w["age_seconds"] is not None]
            return len(workers) == count and len(ready) == count and {w["pid"] for w in workers}
        return probe

    two = wait_until(live_workers(2), 2.0, "2 workers in /status")
    server.proc.send_signal(signal.SIGTTIN)
    three = wait_until(live_workers(3), 3.0, "3 workers in /status after TTIN")
    assert two < three
    server.proc.send_signal(signal.SIGTTOU)
    back = wait_until(live_workers(2), 5.0, "2 workers in /status after TTOU")
    assert back < three
    (gone,) = three - back
    server.wait_for_stderr(rf"worker {gone} exited with status 0", timeout=2.0)
    for _ in range(40):  # every new connection is still served by one of the 2 left
        assert worker_pid(server) in back


def test_arbiter_max_requests_recycles_worker(serve):
    server = serve(APP, "--workers", "1", "--max-requests", "20")
    pids = [worker_pid(server) for _ in range(50)]  # worker_pid asserts each answer
    served = collections.Counter(pids)
    assert len(served) >= 2, f"one worker served all 50 requests with --max-requests 20 ({pids[0]})"
    # no jitter: "about 20" leaves no room for 30 more
    assert max(served.values()) <= 22, f"a worker served {max(served.values())} requests, max-requests 20"


def test_arbiter_usr1_reopens_access_log(serve, tmp_path):
    log = tmp_path / "access.log"
    rotated = tmp_path / "access.log.1"
    server = serve(APP, "--workers", "2", "--access-log", str(log))

    def lines(path):
        return path.read_text().splitlines() if path.exists() else []

    for _ in range(10):
        worker_pid(server, "/before")
    wait_until(lambda: len(lines(log)) == 10, 3.0, "10 lines in the access log")
    os.rename(log, rotated)
    server.proc.send_signal(signal.SIGUSR1)
    wait_until(log.exists, 3.0, "a new access log at the path after USR1")
    sent = 0
    deadline = time.monotonic() + 5.0
    while not lines(log) and time.monotonic() < deadline:
        for _ in range(5):
            worker_pid(server, "/after")
        sent += 5
        pause(0.2)
    wait_until(lambda: len(lines(log)) + len(lines(rotated)) == 10 + sent, 3.0, "every request logged")
    assert lines(log), "nothing written to the reopened access log"
    assert all("/after" in line for line in lines(log)), lines(log)
    assert sum("/before" in line for line in lines(rotated)) == 10


# -- admin, pid file, access log format -----------------------------------------------------------


def test_arbiter_metrics_count_every_request(serve):
    server = serve(APP, "--workers", "2", "--admin", "127.0.0.1:0")
    admin = Admin(server)
    assert admin.get("/health") == (200, b"ok\n")
    for _ in range(30):
        assert get(server.port, "/counted")[0] == 200
    for _ in range(7):
        assert get(server.port, "/missing")[0] == 404
    samples = wait_until(lambda: (lambda s: sample_sum(s, "fastcore_requests_total") >= 37 and s)(admin.metrics()),
                         3.0, "37 requests in /metrics")
    assert sample_sum(samples, "fastcore_requests_total") == 37
    assert samples[("fastcore_requests_total", (("status_class", "2xx"),))] == 30
    assert samples[("fastcore_requests_total", (("status_class", "4xx"),))] == 7
    assert samples[("fastcore_workers", ())] == 2
    assert admin.get("/health") == (200, b"ok\n")


def test_arbiter_pid_file_lives_while_it_runs(serve, tmp_path):
    pid_file = tmp_path / "fastcore.pid"
    server = serve(APP, "--workers", "2", "--pid", str(pid_file))
    assert int(pid_file.read_text()) == server.pid
    assert server.stop() == 0
    assert not pid_file.exists(), "the pid file is left behind"


def test_arbiter_json_access_log_lines(serve, tmp_path):
    log = tmp_path / "access.json"
    server = serve(APP, "--workers", "2", "--access-log", str(log), "--access-log-format", "json")
    sent = [("/json/a", 200)] * 3 + [("/missing", 404)] * 2
    for path, status in sent:
        assert get(server.port, path)[0] == status
    wait_until(lambda: log.exists() and len(log.read_text().splitlines()) == len(sent), 3.0, "5 access log lines")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted((r["path"], r["status"]) for r in records) == sorted(sent)
    assert all(r["method"] == "GET" and r["request_id"] for r in records), records


def test_arbiter_connections_waiting_for_a_stuck_worker_are_served_by_its_replacement(serve):
    """The only worker spins; new clients wait in the listening socket's
    queue, which belongs to the arbiter: when the stuck worker is killed,
    its replacement serves every one of them, none is lost."""
    server = serve(APP, "--workers", "1", "--timeout", "1", "--threads", "1")
    stuck = server.connect()
    stuck.send(request_bytes("GET", "/spin"))
    pause(0.3)
    waiting = [server.connect(timeout=15) for _ in range(5)]
    try:
        for client in waiting:
            client.send(request_bytes("GET", "/"))
        bodies = {int(client.read_response().body) for client in waiting}
    finally:
        for client in waiting:
            client.close()
        stuck.close()
    assert len(bodies) == 1 and server.pid not in bodies
    server.wait_for_stderr(r"is stuck", timeout=5)
