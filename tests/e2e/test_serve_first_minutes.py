"""`fastcore serve` as a new user meets it (issue #15): the current
directory served by itself is listed; the requests the server refuses by
itself (400, 408, 413, 414, 431, 505, a traversal 400) reach the access log
with their status and the error log with their reason; a static root that
holds the application is refused at start; paths and accounts are checked
before anything starts. Real processes, real sockets."""
import json
import os
import pwd
import shutil
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest
import requests

from tests.e2e.conftest import request_bytes

APP = """
def app(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"app " + body]
"""


def serve_expecting_exit(tmp_path, *args):
    """`fastcore serve ARGS` that must exit by itself: (status, stderr). If it
    serves instead (a regression), its process group is killed, orphaned
    workers included, and the test fails."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("FASTCORE_")}
    proc = subprocess.Popen([sys.executable, "-m", "fastcore", "serve", *args], cwd=tmp_path, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"fastcore serve {' '.join(args)} kept running") from None
    return proc.returncode, stderr


def test_serve_current_directory_lists_it_and_says_so(tmp_path, serve_files):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "sub").mkdir()
    server = serve_files(tmp_path)
    # the serving lines follow the listening line that made the server ready: wait for them
    server.wait_for_stderr(re.escape(f"fastcore: serving {tmp_path} at /, directories listed (pid {server.pid})"))
    response = requests.get(server.url + "/", timeout=10)
    assert response.status_code == 200
    assert 'href="notes.txt"' in response.text and 'href="sub/"' in response.text
    assert requests.get(server.url + "/sub/", timeout=10).status_code == 200
    # an index file still wins, and --no-autoindex keeps the old answer
    off = serve_files(tmp_path, "--no-autoindex")
    off.wait_for_stderr(r"fastcore: serving .* at / \(pid \d+\)")
    assert "directories listed" not in off.stderr_text()
    assert requests.get(off.url + "/", timeout=10).status_code == 403
    (tmp_path / "index.html").write_text("<p>index</p>")
    assert requests.get(server.url + "/", timeout=10).text == "<p>index</p>"


def test_serve_configured_location_does_not_list_by_default(tmp_path, serve_files):
    (tmp_path / "public").mkdir()
    server = serve_files(tmp_path, "--static", "/=public")
    server.wait_for_stderr(r"fastcore: serving .* at / \(pid \d+\)")
    assert "directories listed" not in server.stderr_text()
    assert requests.get(server.url + "/", timeout=10).status_code == 403


def raw(server, data, read=True):
    """Sends data on a new connection; the status of the answer (None if closed without one)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        if not read:
            return None
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", answer)
    return int(match.group(1)) if match else None


REFUSALS = [
    # (request bytes, status, method, path)
    (b"GARBAGE\r\n\r\n", 400, None, None),
    (request_bytes("GET", "/static/%2e%2e/%2e%2e/etc/passwd"), 400, "GET", "/static/%2e%2e/%2e%2e/etc/passwd"),
    (request_bytes("GET", "/" + "a" * 300), 414, None, None),
    (request_bytes("GET", "/h", headers=[("X-Big", "b" * 2000)]), 431, None, None),
    (b"GET /v HTTP/2.0\r\nHost: x\r\n\r\n", 505, None, None),
    (request_bytes("POST", "/upload", headers=[("Content-Length", "5000")]), 413, "POST", "/upload"),
    (request_bytes("GET", "/nohost", host=False), 400, "GET", "/nohost"),
]


@pytest.mark.parametrize("fmt", ["json", "combined"])
def test_serve_refused_requests_reach_the_access_log(serve, tmp_path, fmt):
    log = tmp_path / f"access-{fmt}.log"
    server = serve(APP, "--access-log", str(log), "--access-log-format", fmt, "--max-body", "1k",
                   "--max-request-line", "256", "--max-header-bytes", "1k", "--header-timeout", "0.3",
                   "--body-timeout", "0.3", "--static", "/static=.", "--static-allow-app",
                   "--refusal-log-rate", "100")
    for data, status, _, _ in REFUSALS:
        assert raw(server, data) == status, data
    # a head that never completes: 408, nothing known of the request
    assert raw(server, b"GET /slow HTTP/1.1\r\nHost: x\r\n") == 408
    # a body that stalls: 408, the request known from the application's environ
    assert raw(server, request_bytes("POST", "/stalled", headers=[("Content-Length", "10")], body=b"12")) == 408
    # a chunked body over max_body, found while reading it: 413
    chunked = (b"POST /chunks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"400\r\n" + b"x" * 1024 + b"\r\n400\r\n" + b"x" * 1024 + b"\r\n0\r\n\r\n")
    assert raw(server, chunked) == 413
    assert requests.post(server.url + "/ok", data=b"fine", timeout=10).text == "app fine"
    assert server.stop() == 0
    expected = [(status, method, path) for _, status, method, path in REFUSALS] + [
        (408, None, None), (408, "POST", "/stalled"), (413, "POST", "/chunks"), (200, "POST", "/ok")]
    lines = log.read_text().splitlines()
    if fmt == "json":
        records = [json.loads(line) for line in lines]
        assert [(r["status"], r["method"], r["path"]) for r in records] == expected
        assert all(r["reason"] for r in records[:-1]) and "reason" not in records[-1]
        assert "climbs above the root" in records[1]["reason"]
        assert "max_body" in records[5]["reason"] or "Content-Length" in records[5]["reason"]
    else:
        got = []
        for line in lines:
            match = re.match(r'127\.0\.0\.1 - - \[[^]]+\] "([^"]*)" (\d{3}) \d+ ', line)
            assert match, line
            request = match.group(1)
            method, path = request.split(" ")[:2] if request != "-" else (None, None)
            got.append((int(match.group(2)), method, path))
        assert got == expected
    # the reason of each refusal is in the error log, one line each
    refused = re.findall(r"\[INFO\] refused (\d{3}) (.*) from 127\.0\.0\.1: (.+)", server.stderr_text())
    assert [int(status) for status, _, _ in refused] == [status for status, _, _ in expected[:-1]]
    assert refused[0][1] == "(no request head)" and refused[1][1].startswith("GET /static/%2e%2e/%2e%2e/etc/passwd HTTP/1.1")


def test_serve_refuses_a_static_root_holding_the_application(tmp_path):
    (tmp_path / "app.py").write_text(APP)
    status, stderr = serve_expecting_exit(tmp_path, "app:app", "--bind", "127.0.0.1:0", "--static", "/=.")
    assert status == 2
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    assert f"would serve the application's own source {tmp_path / 'app.py'}" in stderr


def test_serve_static_root_holding_the_application_when_allowed(serve):
    server = serve(APP, "--static", "/=.", "--static-allow-app")
    assert requests.get(server.url + "/app.py", timeout=10).text == APP


@pytest.mark.parametrize("flag", ["--error-log", "--pid", "--access-log"])
def test_serve_path_in_a_missing_directory_is_one_line(tmp_path, flag):
    (tmp_path / "app.py").write_text(APP)
    status, stderr = serve_expecting_exit(tmp_path, "app:app", "--bind", "127.0.0.1:0", flag,
                                          str(tmp_path / "missing" / "file"))
    assert status == 2, stderr
    assert stderr == (f"fastcore: error: setting {flag[2:].replace('-', '_')}: cannot write "
                             f"{str(tmp_path / 'missing' / 'file')!r}: the directory {tmp_path / 'missing'} "
                             f"does not exist\n")


def test_reload_with_a_path_in_a_missing_directory_keeps_serving(serve, tmp_path):
    config = tmp_path / "fastcore.toml"
    config.write_text(f'access_log = "{tmp_path / "access.log"}"\n')
    server = serve(APP, "--config", str(config))
    config.write_text(f'access_log = "{tmp_path / "gone" / "access.log"}"\n')
    os.kill(server.pid, signal.SIGHUP)
    server.wait_for_stderr(r"reload: keeping the current configuration: setting access_log: cannot write "
                           r".*the directory .*gone does not exist")
    for _ in range(20):  # every worker, old or new, answers
        assert requests.get(server.url + "/", timeout=10).text == "app "
    assert "Traceback" not in server.stderr_text()


@pytest.mark.skipif(os.getuid() != 0, reason="dropping privileges needs the tests to run as root (CI does)")
def test_serve_log_files_created_by_a_root_arbiter_are_writable_by_its_workers(serve):
    nobody = pwd.getpwnam("nobody")
    directory = tempfile.mkdtemp(prefix="fc-logs-", dir="/tmp")
    try:
        os.chmod(directory, 0o777)
        error_log, access_log = os.path.join(directory, "error.log"), os.path.join(directory, "access.log")
        server = serve(APP, "--preload", "--user", "nobody", "--group", str(nobody.pw_gid),
                       "--error-log", error_log, "--access-log", access_log)
        assert requests.get(server.url + "/x", timeout=10).text == "app "
        assert server.stop() == 0
        assert os.stat(error_log).st_uid == nobody.pw_uid
        assert '"GET /x HTTP/1.1" 200' in open(access_log).read()
    finally:
        shutil.rmtree(directory)


def test_serve_refusal_reasons_in_the_error_log_are_rate_limited(serve):
    """A flood of bad requests is not a flood of error-log writes: at most
    refusal_log_rate reason lines a second, and a line that counts the rest."""
    server = serve(APP, "--refusal-log-rate", "5")
    for _ in range(30):
        assert raw(server, b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n") == 400
    time.sleep(1.1)
    assert raw(server, b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n") == 400
    server.wait_for_stderr(r"refused (\d+) more requests")
    text = server.stderr_text()
    lines = re.findall(r"\[INFO\] refused 400 ", text)
    counted = sum(int(n) for n in re.findall(r"refused (\d+) more requests", text))
    assert len(lines) <= 11, len(lines)  # 5 a second; the burst may straddle two seconds, then the last
    assert len(lines) + counted == 31, (len(lines), counted)
