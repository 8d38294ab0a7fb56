"""How the arbiter starts: --preload, systemd socket activation, and
dropping privileges with --user/--group."""
import os
import pwd
import socket
import subprocess
import sys

import pytest

PID_APP = '''
import os
IMPORTED_IN = os.getpid()

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{IMPORTED_IN} {os.getpid()} {os.getuid()} {os.getgid()}".encode()]
'''


def fetch(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return [int(x) for x in body.split()]


def test_arbiter_preload_imports_the_app_once_in_the_arbiter(serve):
    server = serve(PID_APP, "--preload", "--workers", "2")
    imported_in, worker, _, _ = fetch(server.port)
    assert imported_in == server.pid  # imported by the arbiter before forking
    assert worker != server.pid


def test_arbiter_without_preload_each_worker_imports_the_app(serve):
    server = serve(PID_APP)
    imported_in, worker, _, _ = fetch(server.port)
    assert imported_in == worker != server.pid


LAUNCH = '''
import os, socket, sys
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen(16)
os.dup2(sock.fileno(), 3)
os.set_inheritable(3, True)  # dup2 onto itself (fd 3 already) keeps close-on-exec
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
sys.stderr.write(f"launcher bound port {sock.getsockname()[1]}\\n")
sys.stderr.flush()
os.execv(sys.executable, [sys.executable, "-m", "fastcore", "serve", "app:app", "--bind", "127.0.0.1:1"])
'''


def test_arbiter_serves_sockets_from_systemd_activation(tmp_path, adopt):
    # the launcher plays systemd: it binds, passes fd 3 with LISTEN_FDS and
    # LISTEN_PID, and execs fastcore, whose own --bind (port 1) must then be unused
    (tmp_path / "app.py").write_text(PID_APP)
    proc = subprocess.Popen([sys.executable, "-c", LAUNCH], cwd=tmp_path, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = adopt(proc, tmp_path)
    port = int(server.wait_for_stderr(r"launcher bound port (\d+)").group(1))
    assert server.port == port
    imported_in, worker, _, _ = fetch(port)
    assert worker != server.pid


@pytest.mark.skipif(os.getuid() != 0, reason="dropping privileges needs the tests to run as root (CI does)")
def test_arbiter_workers_drop_privileges_to_user_and_group(serve):
    nobody = pwd.getpwnam("nobody")
    # --preload: the test's directory is readable by root only, as a deployed
    # app's may be; the arbiter imports it, the workers then drop privileges
    server = serve(PID_APP, "--preload", "--user", "nobody", "--group", str(nobody.pw_gid))
    _, worker, uid, gid = fetch(server.port)
    assert (uid, gid) == (nobody.pw_uid, nobody.pw_gid)
    with open(f"/proc/{server.pid}/status") as status:
        arbiter_uid = next(int(line.split()[1]) for line in status if line.startswith("Uid:"))
    assert arbiter_uid == 0  # the arbiter keeps root to bind and to signal its workers
