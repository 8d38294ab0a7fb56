"""The fixed workloads of the cost gate, one per layer, each measured in
instructions per request (callgrind; start-up subtracted by running each
workload at two sizes and taking the difference).

    parser_c     the C head parser + framing facts on the realistic request (SSE2
                 level, present on every x86-64, so the count does not depend on
                 which SIMD the CI machine has)
    parser_py    RequestParser.feed on the realistic request, Python objects made
    wsgi_hello   a hello-world WSGI round trip through `fastcore serve`
    flask_hello  a Flask hello round trip through `fastcore serve`
    limits       wsgi_hello with a per-client rate limit configured but never reached
                 (the client resolved, the shared table asked once per request); the
                 goal is at most 3% over wsgi_hello
    asgi_hello   a raw ASGI hello round trip through `fastcore serve` (asyncio's own
                 loop driving the core loop, one task per request)
    static_1k    a 1 KiB file from the static-file cache (`fastcore serve` with no app)
    static_304   a conditional GET of that file answered 304 (If-None-Match)
    proxy_small  a hello-world response through `fastcore serve --proxy` (the proxy
                 alone under callgrind; its backend, a fastcore hello server,
                 runs natively)

The static layers revalidate once an hour, so that no clock-driven stat()
lands in the counts.
"""
import contextlib
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile

from bench.cost.measure import LOAD, per_request, python_executable, wait_port
from bench.load.harness import free_port

ROOT = pathlib.Path(__file__).resolve().parents[2]
REALISTIC = ROOT / "bench" / "data" / "realistic.http"
REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: cost\r\nAccept: */*\r\n\r\n"
SSE2 = "1"


def build_parser_bench(source_dir=ROOT / "src_c", out_dir=None):
    """Compiles bench/c/bench_fc_http.c against the fc_http.c in source_dir."""
    out_dir = pathlib.Path(out_dir or tempfile.mkdtemp(prefix="fastcore-cost-"))
    binary = out_dir / "bench_fc_http"
    subprocess.run(["gcc", "-O3", "-std=c11", f"-I{source_dir}", "-o", str(binary),
                    str(ROOT / "bench" / "c" / "bench_fc_http.c"), str(pathlib.Path(source_dir) / "fc_http.c")],
                   check=True)
    return binary


def program_instructions(command, env=None, cwd=None):
    """Total instructions of a program that runs to completion under callgrind."""
    out = tempfile.mktemp(prefix="fastcore-cost-", suffix=".callgrind")
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=cwd)
    try:
        for line in pathlib.Path(out).read_text(errors="replace").splitlines():
            if line.startswith("totals:") or line.startswith("summary:"):
                return int(line.split()[1])
    finally:
        os.unlink(out)
    raise RuntimeError("callgrind wrote no totals")


def parser_c(binary=None, counts=(2000, 12000)):
    # FASTCORE_COST_SRC_C points the gate at another copy of src_c (its own test
    # uses a deliberately slowed one)
    binary = binary or build_parser_bench(os.environ.get("FASTCORE_COST_SRC_C", ROOT / "src_c"))
    totals = [program_instructions([str(binary), str(REALISTIC), str(n), SSE2]) for n in counts]
    return (totals[1] - totals[0]) / (counts[1] - counts[0])


PARSER_PY = """
import sys
from fastcore.http import RequestParser
data = open(sys.argv[1], "rb").read()
parser = RequestParser()
for _ in range(int(sys.argv[2])):
    request = parser.feed(data)[0]
    request.method, request.target, request.headers
"""


def parser_py(counts=(2000, 12000)):
    env = server_env()
    py = python_executable()
    # run from bench/load so that a source checkout's fastcore/ (not built in
    # place) cannot shadow the installed package
    totals = [program_instructions([py, "-c", PARSER_PY, str(REALISTIC), str(n)], env=env, cwd=str(LOAD))
              for n in counts]
    return (totals[1] - totals[0]) / (counts[1] - counts[0])


def server_env():
    """Deterministic interpreter: fixed hash seed, the load apps importable."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(LOAD), os.environ.get("PYTHONPATH", "")] if p)
    return env


def serve_command(app):
    # --auto-threads-after: under callgrind a Flask call runs ~50 times slower
    # than natively and passes the default 5 ms, which would move the calls
    # to the threads and measure that path instead of the inline one a real
    # Flask hello (0.1 ms) takes; the auto bookkeeping itself stays measured
    py = python_executable()
    return lambda port: [py, "-m", "fastcore", "serve", f"apps:{app}", "--bind", f"127.0.0.1:{port}",
                         "--auto-threads-after", "60"]


def wsgi_hello():
    return per_request(serve_command("hello"), REQUEST, b"Hello, World!", env=server_env(), cwd=str(LOAD),
                       children_only=True)


def limits():
    serve = serve_command("hello")
    # a burst and nodelay: however close two requests come, none is delayed or refused
    return per_request(lambda port: serve(port) + ["--limit-req-rate", "1000000", "--limit-req-burst", "1000",
                                                   "--limit-req-nodelay"],
                       REQUEST, b"Hello, World!", env=server_env(), cwd=str(LOAD), children_only=True)


def flask_hello():
    return per_request(serve_command("flask_hello"), REQUEST, b"Hello, World!", env=server_env(), cwd=str(LOAD),
                       children_only=True)


# 1 KiB whose last bytes mark the end of the response for the client
STATIC_1K = b"x" * (1024 - 10) + b"END-OF-1K\n"


# A fixed modification time, and no inode in the ETag: the conditional
# request is then the same bytes in every run. (The ~230-instruction jumps
# once blamed on the inode's length came from how runs ended: see
# measure.send_requests.)
STATIC_MTIME_NS = 1_700_000_000_123_456_789


def static_site():
    """A directory holding 1k.bin, and the ETag fastcore gives it."""
    site = pathlib.Path(tempfile.mkdtemp(prefix="fastcore-cost-site-"))
    (site / "1k.bin").write_bytes(STATIC_1K)
    os.utime(site / "1k.bin", ns=(STATIC_MTIME_NS, STATIC_MTIME_NS))
    etag = f'"{len(STATIC_1K):x}-{STATIC_MTIME_NS:x}"'
    return site, etag


def static_command(port):
    return [python_executable(), "-m", "fastcore", "serve", "--bind", f"127.0.0.1:{port}",
            "--static-revalidate", "3600", "--no-etag-inode"]


def asgi_hello():
    # asyncio's own loop, whether uvloop is installed or not: the count must
    # not depend on the machine's packages
    command = serve_command("asgi_hello")
    return per_request(lambda port: command(port) + ["--asyncio-loop", "asyncio"], REQUEST, b"Hello, World!",
                       env=server_env(), cwd=str(LOAD), children_only=True)


def static_1k():
    site, _ = static_site()
    request = b"GET /1k.bin HTTP/1.1\r\nHost: localhost\r\nUser-Agent: cost\r\nAccept: */*\r\n\r\n"
    try:
        return per_request(static_command, request, b"END-OF-1K\n", env=server_env(), cwd=str(site),
                           children_only=True)
    finally:
        shutil.rmtree(site)


def static_304():
    site, etag = static_site()
    request = (b"GET /1k.bin HTTP/1.1\r\nHost: localhost\r\nUser-Agent: cost\r\nAccept: */*\r\n"
               b"If-None-Match: " + etag.encode() + b"\r\n\r\n")
    try:
        return per_request(static_command, request, b"\r\n\r\n", env=server_env(), cwd=str(site),
                           children_only=True)
    finally:
        shutil.rmtree(site)


@contextlib.contextmanager
def hello_backend():
    """A fastcore hello server run natively (not under callgrind), the proxy
    layer's backend; yields its port and is stopped by its PID."""
    port = free_port()
    proc = subprocess.Popen(serve_command("hello")(port), env=server_env(), cwd=str(LOAD),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_port(port, proc)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def proxy_small():
    # one backend for both runs: each run's proxy opens its one upstream
    # connection on the first request, so the connect cancels out
    with hello_backend() as backend:
        def command(port):
            return [python_executable(), "-m", "fastcore", "serve", "--proxy", f"/=127.0.0.1:{backend}",
                    "--bind", f"127.0.0.1:{port}"]
        return per_request(command, REQUEST, b"Hello, World!", env=server_env(), cwd=str(LOAD),
                           children_only=True)


LAYERS = {
    "parser_c": parser_c,
    "parser_py": parser_py,
    "wsgi_hello": wsgi_hello,
    "flask_hello": flask_hello,
    "limits": limits,
    "asgi_hello": asgi_hello,
    "static_1k": static_1k,
    "static_304": static_304,
    "proxy_small": proxy_small,
}


def measure_all(names=None):
    results = {}
    for name in names or LAYERS:
        results[name] = round(LAYERS[name]())
        print(f"  {name}: {results[name]:,} instructions per request", file=sys.stderr, flush=True)
    return results
