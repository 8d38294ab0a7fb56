"""Instructions one server spends serving N requests (hello world or FastAPI
hello, one at a time on one keep-alive connection, after 100 to warm up),
every process of it under callgrind (each one's count is printed too).
Run at two N and subtract: what is left is the cost of a request, start-up
and shutdown cancelled out. fastcore's arbiter does no per-request work,
only clock-driven ticks, which a slow callgrind run has more of: compare
its worker's counts.

    python -m bench.peers.instructions fastcore fastapi_hello 300
    python -m bench.peers.instructions fastcore fastapi_hello 1300

SERVER: fastcore (uvloop), uvicorn (uvloop, httptools), granian (asgi).
"""
import glob
import os
import signal
import subprocess
import sys
import tempfile
import time

from bench.cost.layers import REQUEST, server_env
from bench.cost.measure import LOAD, python_executable, send_requests
from bench.load.harness import free_port

ANSWERS = {"asgi_hello": b"Hello, World!", "fastapi_hello": b'{"message":"Hello, World!"}'}


def command(server, app, port):
    py = python_executable()
    return {
        "fastcore": [py, "-m", "fastcore", "serve", f"apps:{app}", "--bind", f"127.0.0.1:{port}",
                     "--asyncio-loop", "uvloop"],
        "uvicorn": [py, "-m", "uvicorn", f"apps:{app}", "--port", str(port), "--loop", "uvloop", "--http",
                    "httptools", "--log-level", "warning", "--no-access-log"],
        "granian": [py, "-m", "granian", "--interface", "asgi", "--port", str(port), "--workers", "1", "--no-ws",
                    f"apps:{app}"],
    }[server]


def first_answer(port, proc, end, seconds=600):
    """The first request, retried until the application is loaded (under
    callgrind, importing FastAPI takes minutes)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            send_requests(port, REQUEST, 1, end)
            return
        except (OSError, RuntimeError):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise
            time.sleep(1)


def total_instructions(server, app, count):
    port = free_port()
    end = ANSWERS[app]
    with tempfile.TemporaryDirectory() as directory:
        out = os.path.join(directory, "callgrind.out")
        proc = subprocess.Popen(["valgrind", "--tool=callgrind", "--trace-children=yes",
                                 f"--callgrind-out-file={out}.%p", *command(server, app, port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=server_env(),
                                cwd=str(LOAD), start_new_session=True)
        try:
            first_answer(port, proc, end)
            send_requests(port, REQUEST, 100, end)
            send_requests(port, REQUEST, count, end)
        finally:
            os.killpg(proc.pid, signal.SIGTERM if server == "fastcore" else signal.SIGINT)
            proc.wait(120)
        totals = {}
        for path in sorted(glob.glob(out + ".*")):
            name, count = path.rsplit(".", 1)[1], 0
            with open(path, errors="replace") as f:
                for line in f:
                    if line.startswith("cmd:"):
                        name = f"pid {path.rsplit('.', 1)[1]}: {line[4:].strip()[:90]}"
                    elif line.startswith(("summary:", "totals:")):
                        count = int(line.split()[1])
                        break
            totals[name] = count
        return totals


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3 or argv[0] not in ("fastcore", "uvicorn", "granian") or argv[1] not in ANSWERS:
        print(__doc__, file=sys.stderr)
        return 2
    totals = total_instructions(argv[0], argv[1], int(argv[2]))
    print(f"{argv[0]} {argv[1]} {argv[2]} requests: {sum(totals.values()):,} instructions")
    for name, count in totals.items():
        print(f"  {count:>15,}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
