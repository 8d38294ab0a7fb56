"""Instructions per request of a server, counted by callgrind.

A server runs under `valgrind --tool=callgrind` and serves N keep-alive
requests from one client; the same is done with a second N, and the cost
per request is the difference of the two totals over the difference of the
two counts, so start-up and shut-down cancel out. Instruction counts do not
drift with machine load the way times do, which is what lets CI compare
them with a committed baseline.
"""
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

from bench.load.harness import free_port

HERE = pathlib.Path(__file__).resolve().parent
LOAD = HERE.parent / "load"


def wait_port(port, proc, deadline=120.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server not listening on {port} after {deadline} s")


def send_requests(port, request, count, expect_end):
    """count requests, one at a time, on one keep-alive connection; then the
    client half-closes and waits for the server to close its side, so that
    the server has finished with the connection before it is told to stop.
    (Stopped with the connection still open, a worker drains it on a 50 ms
    timer: a few timer runs more or fewer moved a whole run by ~230,000
    instructions, which is 230 per request over the 1,000 the gate takes.)"""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        for _ in range(count):
            s.sendall(request)
            data = b""
            while not data.endswith(expect_end):
                chunk = s.recv(65536)
                if not chunk:
                    raise RuntimeError(f"server closed the connection; got {data[:200]!r}")
                data += chunk
        s.shutdown(socket.SHUT_WR)
        rest = s.recv(65536)
        if rest:
            raise RuntimeError(f"server sent more than the responses: {rest[:200]!r}")


def wait_answer(port, proc, request, expect_end, deadline):
    """One request, tried again until it is answered: a server whose port
    opens before its application is loaded (under callgrind, importing
    FastAPI takes minutes, past send_requests' socket timeout)."""
    end = time.monotonic() + deadline
    while True:
        try:
            send_requests(port, request, 1, expect_end)
            return
        except (OSError, RuntimeError):
            if time.monotonic() > end or proc.poll() is not None:
                raise
            time.sleep(1)


def callgrind_total(command, port, request, count, expect_end, env=None, cwd=None, children_only=False,
                    trace_children=False, load_timeout=None):
    """Total instructions of `command` (which must listen on port) serving count
    requests. Each process writes its own file; with children_only the
    top process (fastcore's arbiter, whose periodic work depends on wall
    time, not on requests) is left out and its workers are summed.
    trace_children: also processes the command execs (a peer's workers);
    load_timeout: seconds to wait for a first answer before counting."""
    out = tempfile.mktemp(prefix="fastcore-cost-", suffix=".callgrind")
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", *(["--trace-children=yes"] if trace_children else []),
         f"--callgrind-out-file={out}.%p", *command],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=cwd, start_new_session=True)
    try:
        wait_port(port, proc)
        if load_timeout is not None:
            wait_answer(port, proc, request, expect_end, load_timeout)
        send_requests(port, request, count, expect_end)
        # the top process only: an arbiter passes the stop on to its workers
        # once (a signal to the whole group would reach a worker twice, the
        # second time racing with its exit)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    total = 0
    for path in pathlib.Path(out).parent.glob(pathlib.Path(out).name + ".*"):
        text = path.read_text(errors="replace")
        path.unlink()
        if children_only and path.suffix == f".{proc.pid}":
            continue
        m = re.search(r"^(?:summary|totals):\s+(\d+)", text, re.M)
        if m:
            total += int(m.group(1))
    if not total:
        raise RuntimeError("callgrind wrote no totals")
    return total


def per_request(make_command, request, expect_end, counts=(200, 1200), env=None, cwd=None, children_only=False,
                **options):
    """Instructions per request: the difference of two runs over the difference
    of their counts (options: callgrind_total's trace_children, load_timeout)."""
    totals = []
    for count in counts:
        port = free_port()
        totals.append(callgrind_total(make_command(port), port, request, count, expect_end, env=env, cwd=cwd,
                                      children_only=children_only, **options))
    return (totals[1] - totals[0]) / (counts[1] - counts[0])


def python_executable():
    """The interpreter running us: a real binary (or a venv's link to one, which
    must be kept as it is so that the venv's packages are found)."""
    return sys.executable


if __name__ == "__main__":
    py = python_executable()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(LOAD), os.environ.get("PYTHONPATH", "")]))
    req = b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: cost\r\nAccept: */*\r\n\r\n"
    servers = {
        "fastcore": lambda port: [py, "-m", "fastcore", "serve", "apps:hello", "--bind", f"127.0.0.1:{port}"],
        "bjoern": lambda port: [py, "-c", f"import bjoern, apps; bjoern.run(apps.hello, '127.0.0.1', {port})"],
    }
    for name in sys.argv[1:] or servers:
        cost = per_request(servers[name], req, b"Hello, World!", env=env, cwd=str(LOAD),
                           children_only=(name == "fastcore"))
        print(f"{name}: {cost:,.0f} instructions per hello-world request")
