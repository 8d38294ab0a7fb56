"""Load benchmark: fastcore and its peers, one worker each, one after the other.

    python -m bench.load                       # every scenario
    python -m bench.load --scenarios hello,pipeline --duration 5

Each server runs pinned to core 0 and wrk to core 1 (taskset), on
127.0.0.1. For every run it prints requests/s, p50 and p99 latency, and the
server's CPU time per request (user + system time of the server's processes,
from /proc/PID/stat before and after the run), with the ratio to fastcore.
Near the top the client saturates its own core, so CPU time per request is
what separates servers there. The idle scenario reports the RSS a worker
adds for 10,000 idle keep-alive connections. The proxy scenario puts the
same backend (nginx, on wrk's core) behind fastcore, nginx and HAProxy, the
proxy alone on core 0, and adds the latency over the backend alone and the
backend connections each proxy opens under 256 clients. The tls scenario
runs fastcore and nginx over HTTPS with the same certificate, suites and
session settings (keep-alive, a new connection per request, a 1 MiB file).

Missing tools are installed by the harness (wrk, nginx and HAProxy from
Debian, the Python peers from PyPI); a peer that cannot be installed is reported as
absent, never silently left out.
"""
import argparse
import contextlib
import json
import os
import pathlib
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
SERVER_CPU = "0"
CLIENT_CPU = "1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# ---- tools ------------------------------------------------------------------------

def ensure_debian(*packages):
    missing = [p for p in packages if shutil.which(p if p != "nginx-light" else "nginx") is None]
    if missing:
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=False)


def ensure_python(*modules):
    for module, package in modules:
        try:
            __import__(module)
        except ImportError:
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", package], check=False)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- contenders -------------------------------------------------------------------

# one worker, the same process settings for every nginx run; {http} is the
# http block's body
NGINX_BASE = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 20000; }}
http {{
    access_log off;
{http}
}}
"""

NGINX_HELLO = """
    server {{
        listen 127.0.0.1:{port} backlog=2048;
        location / {{ return 200 "Hello, World!"; }}
    }}
"""

# TLS: the same certificate (an ECDSA P-256 key, as CDNs and ACME clients
# make by default), the same TLS 1.2 suites (fastcore's default) and the
# same session settings (tickets on, no shared session cache) for both
TLS_CERT_DIR = None  # set by tls_runs()
TLS_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
               "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305")
NGINX_TLS = """
        ssl_certificate {certs}/cert.pem;
        ssl_certificate_key {certs}/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers """ + TLS_CIPHERS + """;
        ssl_prefer_server_ciphers on;
        ssl_session_tickets on;
"""
NGINX_HELLO_TLS = """
    server {{
        listen 127.0.0.1:{port} ssl backlog=2048;
""" + NGINX_TLS + """
        location / {{ return 200 "Hello, World!"; }}
    }}
"""

# nginx as a static-file server the way the docs tune it: sendfile, the open
# file cache, no access log
NGINX_FILES = """
    sendfile on;
    tcp_nopush on;
    open_file_cache max=1000 inactive=60s;
    open_file_cache_valid 60s;
    default_type application/octet-stream;
"""

NGINX_STATIC = NGINX_FILES + """
    server {{
        listen 127.0.0.1:{port} backlog=2048;
        root {site};
    }}
"""

NGINX_STATIC_TLS = NGINX_FILES + """
    server {{
        listen 127.0.0.1:{port} ssl backlog=2048;
""" + NGINX_TLS + """
        root {site};
    }}
"""

# The backend of the proxy scenario: the hello text, the benchmark's files,
# its accepted-connection count (stub_status) and an upload sink. `return`
# alone would answer before the body is in (nginx discards a body in the
# background, after the response); mirror reads the whole body into memory
# first, and the static handler's 405 for a POST is then answered 200.
# check_backend_reads_body() holds that true on every run.
NGINX_BACKEND = NGINX_FILES + """
    client_max_body_size 2m;
    client_body_buffer_size 2m;
    # no limit of its own on a kept-alive connection: nginx's default (1,000
    # requests, then close) would make every proxy reconnect once per 1,000
    # requests, hiding the proxy's own reuse of its pool
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server {{
        listen 127.0.0.1:{port} backlog=2048;
        root {site};
        location = / {{ return 200 "Hello, World!"; }}
        location = /stub_status {{ stub_status; }}
        location = /upload {{ mirror /discard; error_page 404 405 =200 @read; }}
        location = /discard {{ internal; return 204; }}
        location @read {{ return 200 "read"; }}
    }}
"""

# nginx as a reverse proxy the way its docs set up upstream keep-alive
NGINX_PROXY = """
    upstream backend {{
        server {backend};
        keepalive 128;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=2048;
        client_max_body_size 2m;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
"""

# HAProxy with one thread, no log line, reusing idle server connections
# across clients
HAPROXY = """
global
    nbthread 1
    maxconn 8000
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    http-reuse always
frontend bench
    bind 127.0.0.1:{port}
    default_backend backend
backend backend
    server backend {backend}
"""


def nginx_conf(http, **values):
    return NGINX_BASE.format(dir=values["dir"], http=http.format(**values))


def nginx_command(workdir, http, **values):
    """nginx run on a configuration written into workdir; workdir opened to
    nginx's worker user, which writes its temporary files (proxied bodies)
    under it."""
    conf = pathlib.Path(workdir) / "nginx.conf"
    conf.write_text(nginx_conf(http, dir=workdir, **values))
    os.chmod(workdir, 0o755)
    return [shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(conf), "-p", str(workdir)]


def haproxy_command(workdir, **values):
    conf = pathlib.Path(workdir) / "haproxy.cfg"
    conf.write_text(HAPROXY.format(**values))
    return [shutil.which("haproxy") or "/usr/sbin/haproxy", "-f", str(conf), "-db"]


BJOERN_TWO = """
import os, bjoern, apps
for _ in range(2):
    if os.fork() == 0:
        bjoern.run(apps.{app}, "127.0.0.1", {port}, reuse_port=True)
        os._exit(0)
os.wait(); os.wait()
"""


def command_for(name, app, port, workdir):
    """The command line of one contender serving `app` (hello or flask_hello)."""
    py = sys.executable
    if name == "fastcore":
        return [py, "-m", "fastcore", "serve", f"apps:{app}", "--bind", f"127.0.0.1:{port}",
                "--max-connections", "20000"]
    if name == "fastcore-limited":  # a per-client rate limit configured, never reached
        return [py, "-m", "fastcore", "serve", f"apps:{app}", "--bind", f"127.0.0.1:{port}",
                "--max-connections", "20000", "--limit-req-rate", "1000000", "--limit-req-burst", "1000000",
                "--limit-req-nodelay"]
    if name == "fastcore-2w":
        return [py, "-m", "fastcore", "serve", f"apps:{app}", "--bind", f"127.0.0.1:{port}", "--workers", "2"]
    if name == "fastcore-2w-reuse-port":
        return [py, "-m", "fastcore", "serve", f"apps:{app}", "--bind", f"127.0.0.1:{port}", "--workers", "2",
                "--reuse-port"]
    if name == "fastcore-4w":  # the defaults, four workers
        return [py, "-m", "fastcore", "serve", f"apps:{app}", "--bind", f"127.0.0.1:{port}", "--workers", "4"]
    if name == "gunicorn-4w-sync":
        return [py, "-m", "gunicorn", "-w", "4", "-k", "sync", "-b", f"127.0.0.1:{port}",
                "--log-level", "warning", f"apps:{app}"]
    if name == "gunicorn-4w-gthread":
        return [py, "-m", "gunicorn", "-w", "4", "-k", "gthread", "--threads", "16", "-b", f"127.0.0.1:{port}",
                "--log-level", "warning", f"apps:{app}"]
    if name == "granian-4w":  # its defaults, four workers
        return [py, "-m", "granian", "--interface", "wsgi", "--workers", "4", "--host", "127.0.0.1",
                "--port", str(port), "--log-level", "warning", f"apps:{app}"]
    if name == "bjoern-4p":
        return [py, "-c", BJOERN_TWO.replace("range(2)", "range(4)").replace("os.wait(); os.wait()",
                                                                          "[os.wait() for _ in range(4)]")
                .format(app=app, port=port)]
    if name == "gunicorn-2w":
        return [py, "-m", "gunicorn", "-w", "2", "-k", "sync", "-b", f"127.0.0.1:{port}",
                "--log-level", "warning", f"apps:{app}"]
    if name == "bjoern-2p":
        return [py, "-c", BJOERN_TWO.format(app=app, port=port)]
    if name == "bjoern":
        return [py, "-c", f"import bjoern, apps; bjoern.run(apps.{app}, '127.0.0.1', {port})"]
    if name == "granian":
        return [py, "-m", "granian", "--interface", "wsgi", "--workers", "1", "--blocking-threads", "1",
                "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", f"apps:{app}"]
    if name == "fastcore-uvloop":
        return [py, "-m", "fastcore", "serve", f"apps:{app}", "--bind", f"127.0.0.1:{port}",
                "--max-connections", "20000", "--asyncio-loop", "uvloop"]
    if name == "uvicorn":  # ASGI: its defaults (httptools when installed), one worker
        return [py, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                "--log-level", "warning", "--no-access-log", "--lifespan", "off", f"apps:{app}"]
    if name == "gunicorn-uvicorn":  # ASGI: gunicorn's arbiter over one uvicorn worker (httptools, uvloop)
        return [py, "-m", "gunicorn", "-w", "1", "-k", "uvicorn.workers.UvicornWorker", "-b", f"127.0.0.1:{port}",
                "--log-level", "warning", f"apps:{app}"]
    if name == "granian-asgi":
        return [py, "-m", "granian", "--interface", "asgi", "--workers", "1", "--no-ws",
                "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", f"apps:{app}"]
    if name == "granian-asgi-ws":  # its WebSocket support on (the default)
        return [py, "-m", "granian", "--interface", "asgi", "--workers", "1",
                "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", f"apps:{app}"]
    if name == "gunicorn":
        return [py, "-m", "gunicorn", "-w", "1", "-k", "sync", "-b", f"127.0.0.1:{port}",
                "--log-level", "warning", f"apps:{app}"]
    if name == "fastcore-static":  # app: the directory to serve
        return [py, "-m", "fastcore", "serve", "--static", f"/={app}", "--bind", f"127.0.0.1:{port}",
                "--max-connections", "20000"]
    if name == "nginx-static":
        return nginx_command(workdir, NGINX_STATIC, port=port, site=app)
    tls_files = ["--certfile", f"{TLS_CERT_DIR}/cert.pem", "--keyfile", f"{TLS_CERT_DIR}/key.pem"]
    if name == "fastcore-tls":
        return [py, "-m", "fastcore", "serve", f"apps:{app}", "--bind", f"127.0.0.1:{port}",
                "--max-connections", "20000", *tls_files]
    if name == "fastcore-static-tls":
        return [py, "-m", "fastcore", "serve", "--static", f"/={app}", "--bind", f"127.0.0.1:{port}",
                "--max-connections", "20000", *tls_files]
    if name == "granian-tls":
        return [py, "-m", "granian", "--interface", "wsgi", "--workers", "1", "--blocking-threads", "1",
                "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--ssl-protocol-min", "tls1.2",
                "--ssl-certificate", f"{TLS_CERT_DIR}/cert.pem", "--ssl-keyfile", f"{TLS_CERT_DIR}/key.pem",
                f"apps:{app}"]
    if name == "granian-asgi-tls":
        return [py, "-m", "granian", "--interface", "asgi", "--workers", "1", "--no-ws",
                "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--ssl-protocol-min", "tls1.2",
                "--ssl-certificate", f"{TLS_CERT_DIR}/cert.pem", "--ssl-keyfile", f"{TLS_CERT_DIR}/key.pem",
                f"apps:{app}"]
    if name == "uvicorn-tls":
        return [py, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                "--log-level", "warning", "--no-access-log", "--lifespan", "off",
                "--ssl-certfile", f"{TLS_CERT_DIR}/cert.pem", "--ssl-keyfile", f"{TLS_CERT_DIR}/key.pem",
                f"apps:{app}"]
    if name == "nginx-tls":
        return nginx_command(workdir, NGINX_HELLO_TLS, port=port, certs=TLS_CERT_DIR)
    if name == "nginx-static-tls":
        return nginx_command(workdir, NGINX_STATIC_TLS, port=port, site=app, certs=TLS_CERT_DIR)
    if name == "nginx":
        return nginx_command(workdir, NGINX_HELLO, port=port)
    # the proxy scenario: app is the backend's HOST:PORT, or its site for the backend
    if name == "nginx-backend":
        return nginx_command(workdir, NGINX_BACKEND, port=port, site=app)
    if name == "fastcore-proxy":
        return [py, "-m", "fastcore", "serve", "--proxy", f"/={app}", "--bind", f"127.0.0.1:{port}",
                "--max-connections", "20000"]
    if name == "nginx-proxy":
        return nginx_command(workdir, NGINX_PROXY, port=port, backend=app)
    if name == "haproxy":
        return haproxy_command(workdir, port=port, backend=app)
    raise ValueError(name)


def available(name):
    name = name.split("-")[0]
    if name in ("nginx", "haproxy"):
        return shutil.which(name) is not None or os.path.exists(f"/usr/sbin/{name}")
    if name == "fastcore":
        return True
    try:
        __import__(name)
        return True
    except ImportError:
        return False


@contextlib.contextmanager
def running(name, app, cpus=SERVER_CPU):
    port = free_port()
    workdir = tempfile.mkdtemp(prefix=f"bench-{name}-")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    log = open(pathlib.Path(workdir) / "server.log", "w")
    proc = subprocess.Popen(["taskset", "-c", cpus, *command_for(name, app, port, workdir)],
                            cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        wait_ready(port, proc, workdir, scheme="https" if name.endswith("-tls") else "http")
        yield proc, port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def wait_ready(port, proc, workdir, deadline=30.0, scheme="http"):
    end = time.monotonic() + deadline
    context = ssl._create_unverified_context() if scheme == "https" else None
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {(pathlib.Path(workdir) / 'server.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{scheme}://127.0.0.1:{port}/", timeout=1, context=context) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on port {port} not ready in {deadline} s")


# ---- measuring -----------------------------------------------------------------------

def process_tree(pid):
    """pid and all its descendants (nginx and gunicorn masters fork workers)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry))
            except OSError:
                pass
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def cpu_seconds(pid):
    total = 0
    for p in process_tree(pid):
        try:
            fields = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total / CLOCK_TICKS


def own_rss_kib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kib(pid):
    """RSS of pid and all its descendants."""
    return sum(own_rss_kib(p) for p in process_tree(pid))


UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def parse_wrk(text):
    def latency(pct):
        m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        return float(m.group(1)) * UNITS[m.group(2)] if m else float("nan")

    requests = int(re.search(r"(\d+) requests in", text).group(1))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    p999 = re.search(r"^p99\.9 (\d+)$", text, re.M)  # printed by mixed.lua's done()
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
        "requests": requests,
        "p50": latency(50),
        "p99": latency(99),
        "p999": int(p999.group(1)) * 1e-6 if p999 else float("nan"),
        "errors": errors + (int(non2xx.group(1)) if non2xx else 0),
    }


def run_wrk(port, duration, connections, script=None, path="/", headers=(), scheme="http"):
    cmd = ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
           "--timeout", "5s"]
    if script:
        cmd += ["-s", str(HERE / script)]
    for header in headers:
        cmd += ["-H", header]
    cmd.append(f"{scheme}://127.0.0.1:{port}{path}")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30)
    return parse_wrk(out.stdout)


def measure(name, app, duration, connections, script=None, cpus=SERVER_CPU, path="/", headers=()):
    scheme = "https" if name.endswith("-tls") else "http"
    with running(name, app, cpus) as (proc, port):
        run_wrk(port, 1, connections, script, path, headers, scheme)  # warm up
        cpu0 = cpu_seconds(proc.pid)
        result = run_wrk(port, duration, connections, script, path, headers, scheme)
        cpu1 = cpu_seconds(proc.pid)
    result["cpu_us"] = (cpu1 - cpu0) / max(result["requests"], 1) * 1e6
    return result


# ---- WebSocket echo ------------------------------------------------------------------

WS_NAMES = ["fastcore", "uvicorn", "granian-asgi-ws"]


def run_ws_client(port, duration, connections, processes=1):
    """bench/load/ws_load.py on the client's core: echoes received and the window's length."""
    cmd = ["taskset", "-c", CLIENT_CPU, sys.executable, str(HERE / "ws_load.py"), "--port", str(port),
           "--connections", str(connections), "--duration", str(duration), "--processes", str(processes)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 90)
    if out.returncode:
        raise RuntimeError(f"ws_load failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def ws_measure(name, duration, connections, processes):
    """Echoes a second through one client process and through two (the
    check that the client is not what limits), with the server's CPU time
    per message and how busy its core was."""
    result = {}
    with running(name, "asgi_ws_echo") as (proc, port):
        run_ws_client(port, 1, connections)  # warm up
        for label, count in (("one", 1), ("two", 2)) if processes == 2 else (("one", 1),):
            cpu0, wall0 = cpu_seconds(proc.pid), time.monotonic()
            r = run_ws_client(port, duration, connections, count)
            cpu, wall = cpu_seconds(proc.pid) - cpu0, time.monotonic() - wall0
            result[label] = {"mps": r["messages"] / r["seconds"], "messages": r["messages"],
                             "cpu_us": cpu / max(r["messages"], 1) * 1e6, "server_busy": cpu / wall}
    return result


def ws_runs(duration, connections):
    results = {}
    for name in WS_NAMES:
        try:
            results[name] = ws_measure(name, duration, connections, 2) if available(name) else None
        except Exception as e:  # a peer that fails is reported, the run goes on
            print(f"{name}: failed: {e}", file=sys.stderr)
            results[name] = None
    return results


def print_ws_table(results, connections):
    base = (results.get("fastcore") or {}).get("one")
    print(f"\n### WebSocket echo (raw ASGI application), one worker on core 0, {connections} connections, "
          f"one 64-byte message in flight each\n")
    print("| server | messages/s (1 client process) | messages/s (2 client processes) | CPU µs/message "
          "| server core busy | messages/s vs fastcore | CPU/message vs fastcore |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        if r is None:
            print(f"| {name} | absent | | | | | |")
            continue
        one, two = r["one"], r.get("two")
        print(f"| {name} | {one['mps']:,.0f} | {two['mps']:,.0f} | {one['cpu_us']:.1f} "
              f"| {one['server_busy'] * 100:.0f}% | {ratio(one['mps'], base and base['mps'])} "
              f"| {ratio(one['cpu_us'], base and base['cpu_us'])} |")


def reload_run(duration, connections):
    """fastcore with 2 workers: requests/s steady, then with a SIGHUP reload
    every 3 s during a run of the same length; errors counted by wrk."""
    with running("fastcore-2w", "hello", "0,1") as (proc, port):
        run_wrk(port, 1, connections)
        steady = run_wrk(port, duration, connections)
        reloads = []

        def hup_every(seconds):
            end = time.monotonic() + duration - 1
            while time.monotonic() + seconds < end:
                time.sleep(seconds)
                os.kill(proc.pid, signal.SIGHUP)
                reloads.append(time.monotonic())

        thread = threading.Thread(target=hup_every, args=(3,))
        thread.start()
        during = run_wrk(port, duration, connections)
        thread.join()
        time.sleep(1)
        rss = {p: own_rss_kib(p) for p in process_tree(proc.pid)}
    return {"steady": steady, "reloading": during, "reloads": len(reloads), "rss_kib": rss, "arbiter": proc.pid}


def idle_memory(name, connections=10000):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with running(name, "hello") as (proc, port):
        time.sleep(0.5)
        before = rss_kib(proc.pid)
        socks = []
        try:
            for _ in range(connections):
                s = socket.create_connection(("127.0.0.1", port))
                s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
                socks.append(s)
            for s in socks:
                s.settimeout(10)
                data = b""
                while b"Hello, World!" not in data:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            time.sleep(1)
            after = rss_kib(proc.pid)
        finally:
            for s in socks:
                s.close()
    return {"rest_kib": before, "idle_kib": after, "per_conn_bytes": (after - before) * 1024 / connections}


STATIC_FILES = {"1k.bin": 1024, "64k.bin": 64 * 1024, "1m.bin": 1024 * 1024}


def make_site():
    """A directory with the benchmark's files (random bytes) and an index.html."""
    site = pathlib.Path(tempfile.mkdtemp(prefix="bench-site-"))
    for name, size in STATIC_FILES.items():
        (site / name).write_bytes(os.urandom(size))
    (site / "index.html").write_text("<!DOCTYPE html><title>bench</title>\n")
    os.chmod(site, 0o755)  # nginx's worker may run as another user
    for path in site.iterdir():
        os.chmod(path, 0o644)
    return site


def static_runs(duration, connections):
    """fastcore and nginx serving the same files: each size, then a 304
    revalidation of the 1 KiB file (If-Modified-Since its own date)."""
    site = make_site()
    try:
        stamp = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime((site / "1k.bin").stat().st_mtime))
        runs = [(f"{name} ({size // 1024} KiB)", f"/{name}", (), size) for name, size in STATIC_FILES.items()]
        runs.append(("304 revalidation of 1k.bin", "/1k.bin", (f"If-Modified-Since: {stamp}",), 0))
        report = {}
        for label, path, headers, size in runs:
            results = {}
            for name in ("fastcore-static", "nginx-static"):
                if not available(name):
                    results[name] = None
                    continue
                r = measure(name, str(site), duration, connections, path=path, headers=headers)
                r["mb_s"] = r["rps"] * size / 1e6
                results[name] = r
            report[label] = results
    finally:
        shutil.rmtree(site, ignore_errors=True)
    return report


def print_static_table(report):
    print("\n### static files, one worker each (server on core 0, wrk on core 1)\n")
    print("| file | server | requests/s | MB/s | p99 | CPU µs/request | requests/s vs nginx "
          "| CPU/request vs nginx | MB/s vs nginx | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, results in report.items():
        base = results.get("nginx-static")
        for name, r in results.items():
            if r is None:
                print(f"| {label} | {name} | absent | | | | | | | |")
                continue
            rps = f"{r['rps'] / base['rps']:.2f}x" if base else ""
            cpu = f"{r['cpu_us'] / base['cpu_us']:.2f}x" if base and base["cpu_us"] else ""
            mbs = f"{r['mb_s'] / base['mb_s']:.2f}x" if base and base["mb_s"] else ""
            print(f"| {label} | {name.split('-')[0]} | {r['rps']:,.0f} | {r['mb_s']:,.0f} | {fmt_time(r['p99'])} "
                  f"| {r['cpu_us']:.1f} | {rps} | {cpu} | {mbs} | {r['errors']} |")


# ---- TLS -------------------------------------------------------------------------------

def tls_runs(duration, connections):
    """fastcore and nginx over HTTPS with the same certificate, suites and
    session settings: the hello (fastcore's WSGI application, nginx's
    `return`) and a 1 KiB file over keep-alive connections; new TLS
    connections per second (wrk sends Connection: close); the 1 MiB file.
    fastcore's plain hello alongside, for what TLS costs it.

    The new connections are not full handshakes: wrk keeps one SSL object
    per connection and clears it between connections, which keeps its
    session, so each new connection offers the last TLS 1.3 ticket it got
    and resumes (an X25519 exchange still, but no certificate and no
    signature), as long as the server sends a new ticket on each resumed
    connection. And wrk's one thread, which does the client's half of each
    handshake, is what limits the rate (its core about 90% busy, the
    server's about 65%): a server that makes the client work more per
    connection loses requests/s without spending more CPU itself."""
    global TLS_CERT_DIR
    TLS_CERT_DIR = tempfile.mkdtemp(prefix="bench-certs-")
    site = make_site()
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", f"{TLS_CERT_DIR}/key.pem", "-out", f"{TLS_CERT_DIR}/cert.pem",
                        "-days", "2", "-subj", "/CN=localhost"], check=True, capture_output=True)
        os.chmod(TLS_CERT_DIR, 0o755)  # nginx's worker may run as another user; the key stays 600 (master reads it)
        os.chmod(f"{TLS_CERT_DIR}/key.pem", 0o600)
        runs = [
            ("keep-alive hello", "hello", "/", (), ["fastcore", "fastcore-tls", "nginx-tls", "granian-tls"], 0),
            ("keep-alive ASGI hello", "asgi_hello", "/", (), ["fastcore-tls", "uvicorn-tls", "granian-asgi-tls"], 0),
            ("keep-alive 1 KiB file", str(site), "/1k.bin", (), ["fastcore-static-tls", "nginx-static-tls"], 1024),
            ("new TLS connection per request (resumed), hello", "hello", "/", ("Connection: close",),
             ["fastcore-tls", "nginx-tls"], 0),
            ("new TLS connection per request (resumed), 1 KiB file", str(site), "/1k.bin",
             ("Connection: close",), ["fastcore-static-tls", "nginx-static-tls"], 1024),
            ("keep-alive 1 MiB file", str(site), "/1m.bin", (), ["fastcore-static-tls", "nginx-static-tls"],
             1 << 20),
        ]
        report = {}
        for label, app, path, headers, names, size in runs:
            results = {}
            for name in names:
                try:
                    r = measure(name, app, duration, connections, path=path, headers=headers) \
                        if available(name) else None
                except Exception as e:  # a peer that fails is reported, the run goes on
                    print(f"{name}: failed: {e}", file=sys.stderr)
                    r = None
                if r is not None:
                    r["mb_s"] = r["rps"] * size / 1e6
                results[name] = r
            report[label] = results
    finally:
        shutil.rmtree(site, ignore_errors=True)
        shutil.rmtree(TLS_CERT_DIR, ignore_errors=True)
    return report


def print_tls_table(report):
    print("\n### HTTPS, one worker each (server on core 0, wrk on core 1), same certificate (ECDSA P-256), "
          "suites and tickets\n")
    print("| run | server | requests/s | MB/s | p99 | CPU µs/request | requests/s vs nginx (ASGI: vs fastcore) "
          "| CPU/request vs nginx (ASGI: vs fastcore) | errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, results in report.items():
        # against nginx where it runs, else against fastcore (the ASGI run)
        base = next((r for name, r in results.items() if name.startswith("nginx")), None) or \
            next((r for name, r in results.items() if name.startswith("fastcore")), None)
        for name, r in results.items():
            if r is None:
                print(f"| {label} | {name} | absent | | | | | | |")
                continue
            rps = f"{r['rps'] / base['rps']:.2f}x" if base else ""
            cpu = f"{r['cpu_us'] / base['cpu_us']:.2f}x" if base and base["cpu_us"] else ""
            print(f"| {label} | {name} | {r['rps']:,.0f} | {r['mb_s']:,.1f} | {fmt_time(r['p99'])} "
                  f"| {r['cpu_us']:.1f} | {rps} | {cpu} | {r['errors']} |")


# ---- proxy -----------------------------------------------------------------------------

PROXY_NAMES = ["fastcore-proxy", "nginx-proxy", "haproxy"]
UPLOAD_BYTES = 1024 * 1024

# (label, path, wrk script, bytes each request carries, for MB/s)
PROXY_CASES = [
    ("small response", "/", None, 0),
    ("64 KiB response", "/64k.bin", None, STATIC_FILES["64k.bin"]),
    ("1 MiB response", "/1m.bin", None, STATIC_FILES["1m.bin"]),
    ("1 MiB upload", "/upload", "upload.lua", UPLOAD_BYTES),
]


@contextlib.contextmanager
def proxy_backend():
    """The backend every proxy forwards to: nginx on the client's core (the
    proxy has core 0 to itself), serving the cases of PROXY_CASES."""
    site = make_site()
    try:
        with running("nginx-backend", str(site), cpus=CLIENT_CPU) as (_, port):
            check_backend_reads_body(port)
            yield port
    finally:
        shutil.rmtree(site, ignore_errors=True)


def check_backend_reads_body(port):
    """The upload sink answers only once the whole body is in: with its last
    byte held back no answer comes, with it a 200."""
    head = f"POST /upload HTTP/1.1\r\nHost: bench\r\nContent-Length: {UPLOAD_BYTES}\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head + b"x" * (UPLOAD_BYTES - 1))
        s.settimeout(0.5)
        with contextlib.suppress(socket.timeout):
            early = s.recv(4096)
            raise RuntimeError(f"the backend answered before the whole upload: {early[:100]!r}")
        s.settimeout(10)
        s.sendall(b"x")
        reply = s.recv(4096)
    if not reply.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"the backend's upload sink answered {reply[:100]!r}")


def backend_accepts(port):
    """Connections the backend nginx has accepted so far (stub_status),
    less the one this request itself opened."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stub_status", timeout=5) as r:
        text = r.read().decode()
    return int(re.search(r"accepts handled requests\s+(\d+)", text).group(1)) - 1


def proxy_case(backend, duration, connections, path, script, size):
    """One case: the backend alone (wrk straight to it), then each proxy."""
    run_wrk(backend, 1, connections, script, path)
    results = {"backend alone": run_wrk(backend, duration, connections, script, path)}
    for name in PROXY_NAMES:
        try:
            results[name] = measure(name, f"127.0.0.1:{backend}", duration, connections, script,
                                    path=path) if available(name) else None
        except Exception as e:  # a peer that fails is reported, the run goes on
            print(f"{name}: failed: {e}", file=sys.stderr)
            results[name] = None
    for r in results.values():
        if r is not None:
            r["mb_s"] = r["rps"] * size / 1e6
    return results


def upstream_churn(name, backend, duration, connections=256):
    """New backend connections a proxy opens over a run with `connections`
    clients, counted by the backend; those of the first second (the pool
    growing from what the warm-up left to the run's concurrency) apart."""
    with running(name, f"127.0.0.1:{backend}") as (_, port):
        run_wrk(port, 1, connections)
        before = backend_accepts(backend)
        result = {}
        thread = threading.Thread(target=lambda: result.update(run_wrk(port, duration, connections)))
        thread.start()
        time.sleep(1)
        first_second = backend_accepts(backend) - before
        thread.join(duration + 60)
        new = backend_accepts(backend) - before
    return {"connections": connections, "requests": result.get("requests", 0), "new": new,
            "first_second": first_second, "per_1000": new * 1000 / max(result.get("requests", 0), 1),
            "errors": result.get("errors", 0)}


def proxy_runs(duration, connections):
    """Each case of PROXY_CASES through each proxy, then the reuse of
    backend connections under 256 clients."""
    report = {"cases": {}, "churn": {}}
    with proxy_backend() as backend:
        for label, path, script, size in PROXY_CASES:
            report["cases"][label] = proxy_case(backend, duration, connections, path, script, size)
        for name in PROXY_NAMES:
            report["churn"][name] = upstream_churn(name, backend, duration) if available(name) else None
    return report


def ratio(value, base):
    return f"{value / base:.2f}x" if base else ""


def print_proxy_table(report, connections):
    print(f"\n### reverse proxy, one worker each on core 0; backend (nginx) and wrk on core 1, "
          f"{connections} connections\n")
    print("| case | proxy | requests/s | MB/s | p50 | p99 | added p50 | added p99 | CPU µs/request "
          "| requests/s vs fastcore | CPU/request vs fastcore | MB/s vs fastcore | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for label, results in report["cases"].items():
        direct, base = results["backend alone"], results.get("fastcore-proxy")
        base = base if base and base["requests"] else None
        for name, r in results.items():
            if r is None:
                print(f"| {label} | {name} | absent | | | | | | | | | | |")
                continue
            if not r["requests"]:  # every request failed (wrk's errors say how)
                print(f"| {label} | {name} | failed | | | | | | | | | | {r['errors']} |")
                continue
            proxied = r is not direct
            added = (fmt_time(r["p50"] - direct["p50"]), fmt_time(r["p99"] - direct["p99"])) if proxied else ("", "")
            cpu = f"{r['cpu_us']:.1f}" if proxied else ""
            print(f"| {label} | {name} | {r['rps']:,.0f} | {r['mb_s'] and format(r['mb_s'], ',.0f') or ''} | {fmt_time(r['p50'])} "
                  f"| {fmt_time(r['p99'])} | {added[0]} | {added[1]} | {cpu} "
                  f"| {ratio(r['rps'], base and base['rps'])} "
                  f"| {ratio(r['cpu_us'], base and base['cpu_us']) if proxied else ''} "
                  f"| {ratio(r['mb_s'], base and base['mb_s'])} | {r['errors']} |")
    print("\n### reverse proxy: new backend connections under churn (256 client connections)\n")
    print("| proxy | requests | new backend connections | of which in the first second | per 1,000 requests "
          "| errors |")
    print("|---|---|---|---|---|---|")
    for name, c in report["churn"].items():
        if c is None:
            print(f"| {name} | absent | | | | |")
            continue
        print(f"| {name} | {c['requests']:,} | {c['new']:,} | {c['first_second']:,} | {c['per_1000']:.2f} "
              f"| {c['errors']} |")


# ---- reporting -----------------------------------------------------------------------

def fmt_time(seconds):
    return f"{seconds * 1e6:.0f} µs" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def print_table(title, results, latency=True):
    base = results.get("fastcore")
    print(f"\n### {title}\n")
    print("| server | requests/s | p50 | p99 | CPU µs/request | requests/s vs fastcore | CPU/request vs fastcore | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        if r is None:
            print(f"| {name} | absent | | | | | | |")
            continue
        base = base or results.get("fastcore-2w")
        rps_ratio = f"{r['rps'] / base['rps']:.2f}x" if base else ""
        cpu_ratio = f"{r['cpu_us'] / base['cpu_us']:.2f}x" if base and base["cpu_us"] else ""
        p50, p99 = (fmt_time(r["p50"]), fmt_time(r["p99"])) if latency else ("n/a", "n/a")
        print(f"| {name} | {r['rps']:,.0f} | {p50} | {p99} | {r['cpu_us']:.1f} "
              f"| {rps_ratio} | {cpu_ratio} | {r['errors']} |")


WORKER_SCENARIO = ("hello world, 2 workers (server on both cores, wrk on core 1)", "hello", None,
                   ["fastcore-2w", "fastcore-2w-reuse-port", "bjoern-2p", "gunicorn-2w"])

MIXED_NAMES = ["fastcore-4w", "granian-4w", "gunicorn-4w-gthread", "gunicorn-4w-sync", "bjoern-4p"]


def mixed_runs(duration, connections):
    """The mixed workload (mixed.lua: every 20th request waits 100 ms in the
    application) on four workers sharing both cores, over keep-alive
    connections and with a new connection per request."""
    report = {}
    for label, headers in (("keep-alive", ()), ("new connection per request", ("Connection: close",))):
        results = {}
        for name in MIXED_NAMES:
            try:
                results[name] = measure(name, "mixed", duration, connections, "mixed.lua", cpus="0,1",
                                        headers=headers) if available(name) else None
            except Exception as e:  # a peer that fails is reported, the run goes on
                print(f"{name}: failed: {e}", file=sys.stderr)
                results[name] = None
        report[label] = results
    return report


def print_mixed_table(report):
    for label, results in report.items():
        print(f"\n### mixed: 95% hello, 5% sleeping 100 ms, 4 workers, {label}\n")
        print("| server | requests/s | p50 | p99 | p99.9 | errors |")
        print("|---|---|---|---|---|---|")
        for name, r in results.items():
            if r is None:
                print(f"| {name} | absent | | | | |")
                continue
            print(f"| {name} | {r['rps']:,.0f} | {fmt_time(r['p50'])} | {fmt_time(r['p99'])} "
                  f"| {fmt_time(r['p999'])} | {r['errors']} |")


SCENARIOS = {
    "hello": ("hello world WSGI", "hello", None, ["fastcore", "bjoern", "granian", "gunicorn", "nginx"]),
    "flask": ("Flask hello", "flask_hello", None, ["fastcore", "bjoern", "granian", "gunicorn"]),
    "asgi": ("hello world ASGI (raw application)", "asgi_hello", None, ["fastcore", "fastcore-uvloop", "uvicorn",
                                                                       "granian-asgi", "gunicorn-uvicorn"]),
    "fastapi": ("FastAPI hello (GET /, a JSON answer)", "fastapi_hello", None,
                ["fastcore", "uvicorn", "granian-asgi", "gunicorn-uvicorn"]),
    "fastapi_echo": ("FastAPI JSON echo of 1 KiB (POST /echo)", "fastapi_hello", "json_echo.lua",
                     ["fastcore", "uvicorn", "granian-asgi", "gunicorn-uvicorn"]),
    "limits": ("hello world WSGI, without and with a per-client rate limit configured (never reached)", "hello",
               None, ["fastcore", "fastcore-limited"]),
    "pipeline": ("hello world, 16 requests pipelined per write", "hello", "pipeline.lua",
                 ["fastcore", "nginx", "granian", "bjoern"]),
}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default="hello,flask,pipeline,static,proxy,idle,workers,reload,mixed,tls")
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    ensure_debian("wrk", "nginx-light", "haproxy")
    ensure_python(("bjoern", "bjoern"), ("granian", "granian"), ("gunicorn", "gunicorn"), ("flask", "flask"),
                  ("uvicorn", "uvicorn"), ("fastapi", "fastapi"), ("websockets", "websockets"))
    print(f"load benchmark, {time.strftime('%Y-%m-%d')}: server on CPU {SERVER_CPU}, wrk on CPU {CLIENT_CPU}, "
          f"{args.connections} connections, {args.duration} s per run")
    report = {}
    for key in args.scenarios.split(","):
        if key == "workers":
            title, app, script, names = WORKER_SCENARIO
            results = {}
            for name in names:
                results[name] = measure(name, app, args.duration, args.connections, cpus="0,1") \
                    if available(name) else None
            report["workers"] = results
            print_table(title, {k: v for k, v in results.items()})
            continue
        if key == "asgi_ws":
            report["asgi_ws"] = ws_runs(args.duration, args.connections)
            print_ws_table(report["asgi_ws"], args.connections)
            continue
        if key == "mixed":
            report["mixed"] = mixed_runs(args.duration, args.connections)
            print_mixed_table(report["mixed"])
            continue
        if key == "static":
            report["static"] = static_runs(args.duration, args.connections)
            print_static_table(report["static"])
            continue
        if key == "tls":
            report["tls"] = tls_runs(args.duration, args.connections)
            print_tls_table(report["tls"])
            continue
        if key == "proxy":
            report["proxy"] = proxy_runs(args.duration, args.connections)
            print_proxy_table(report["proxy"], args.connections)
            continue
        if key == "reload":
            r = reload_run(args.duration, args.connections)
            report["reload"] = r
            print("\n### fastcore, 2 workers, SIGHUP reload every 3 s\n")
            print("| run | requests/s | p99 | errors |")
            print("|---|---|---|---|")
            for label in ("steady", "reloading"):
                x = r[label]
                print(f"| {label} | {x['rps']:,.0f} | {fmt_time(x['p99'])} | {x['errors']} |")
            print(f"\n{r['reloads']} reloads; RSS after: " + ", ".join(
                f"{'arbiter' if pid == r['arbiter'] else 'worker'} {pid}: {kib / 1024:.1f} MiB"
                for pid, kib in r["rss_kib"].items()))
            continue
        if key == "idle":
            results = {}
            for name in ("fastcore", "bjoern", "nginx"):
                results[name] = idle_memory(name) if available(name) else None
            report["idle"] = results
            print("\n### RSS with 10,000 idle keep-alive connections\n")
            print("| server | RSS at rest | RSS with 10,000 idle | per connection |")
            print("|---|---|---|---|")
            for name, r in results.items():
                if r is None:
                    print(f"| {name} | absent | | |")
                else:
                    print(f"| {name} | {r['rest_kib'] / 1024:.1f} MiB | {r['idle_kib'] / 1024:.1f} MiB "
                          f"| {r['per_conn_bytes']:.0f} bytes |")
            continue
        title, app, script, names = SCENARIOS[key]
        results = {}
        for name in names:
            try:
                results[name] = measure(name, app, args.duration, args.connections, script) if available(name) else None
            except Exception as e:  # a peer that fails is reported, the run goes on
                print(f"{name}: failed: {e}", file=sys.stderr)
                results[name] = None
        report[key] = results
        # wrk times a pipelined batch, not each request in it: no latency there
        print_table(title, results, latency=script != "pipeline.lua")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
