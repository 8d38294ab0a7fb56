"""--reload: the application's file is edited under a running server.

The server runs with --reload; the test rewrites app.py (the edits keep the
file's size: "one" -> "two", so a stale .pyc of the same size and second
would show) and waits, with a deadline, for the new response. A broken edit
must fail once (one traceback, with two workers) while the old workers keep
answering, and the next good edit must be picked up.
"""
import os
import re
import subprocess
import sys
import time

from tests.e2e.conftest import Server, descriptors

APP = '''
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"{word}"]
'''
IMPORTING_APP = '''
from pkg.words import WORD


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [WORD]
'''
BROKEN = '''
def app(environ, start_response:
    return [b"never"]
'''
DEADLINE = 15.0


def wait_for_body(server, body, deadline=DEADLINE):
    """Asks until the response is `body`; returns the bodies seen before."""
    seen = []
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        response = server.request()
        assert response.status == 200, response
        if response.body == body:
            return seen
        seen.append(response.body)
        time.sleep(0.05)
    raise AssertionError(f"no {body!r} within {deadline} s (saw {seen[-3:]}):\n{server.stderr_text()}")


def worker_pids(arbiter_pid):
    with open(f"/proc/{arbiter_pid}/task/{arbiter_pid}/children") as children:
        return [int(pid) for pid in children.read().split()]


def test_reload_edit_is_served_by_new_workers(serve):
    server = serve(APP.format(word="one"), "--reload")
    assert re.search(r"^fastcore: reload: watching the \.py files under .+; for development only", server.stderr_text(),
                     re.M), server.stderr_text()
    assert server.request().body == b"one"
    # the arbiter holds the inotify descriptor; its workers do not inherit it
    assert "anon_inode:inotify" in descriptors(server.pid)
    for pid in worker_pids(server.pid):
        assert "anon_inode:inotify" not in descriptors(pid)

    (server.dir / "app.py").write_text(APP.format(word="two"))
    wait_for_body(server, b"two")
    server.wait_for_stderr(r"fastcore: reload: app\.py changed; restarting the workers")
    # a module the application imports, in a package below its directory
    (server.dir / "pkg").mkdir()
    (server.dir / "pkg" / "__init__.py").write_text("")
    (server.dir / "pkg" / "words.py").write_text('WORD = b"three"\n')
    (server.dir / "app.py").write_text(IMPORTING_APP)
    wait_for_body(server, b"three")
    (server.dir / "pkg" / "words.py").write_text('WORD = b"four!"\n')
    wait_for_body(server, b"four!")
    assert server.proc.poll() is None  # the same arbiter all along


def test_reload_broken_edit_keeps_old_workers_and_shows_error_once(serve):
    server = serve(APP.format(word="one"), "--reload", "--workers", "2")
    assert server.request().body == b"one"

    (server.dir / "app.py").write_text(BROKEN)
    server.wait_for_stderr(r"reload failed: importing app:app raised SyntaxError")
    # the old workers go on answering with the old code
    for _ in range(20):
        assert server.request().body == b"one"
    text = server.stderr_text()
    assert text.count("Traceback (most recent call last)") == 1, text
    assert len(re.findall(r"^SyntaxError: ", text, re.M)) == 1, text  # the traceback's last line
    assert text.count("reload failed") == 1, text

    (server.dir / "app.py").write_text(APP.format(word="two"))
    wait_for_body(server, b"two")
    server.wait_for_stderr(r"reload done: generation 2 serving")
    assert len(worker_pids(server.pid)) >= 2
    text = server.stderr_text()
    assert text.count("Traceback (most recent call last)") == 1, text


def test_reload_with_preload_is_one_error_line(tmp_path):
    (tmp_path / "app.py").write_text(APP.format(word="one"))
    env = {key: value for key, value in os.environ.items() if not key.startswith("FASTCORE_")}
    result = subprocess.run([sys.executable, "-m", "fastcore", "serve", "app:app", "--reload", "--preload",
                             "--bind", "127.0.0.1:0"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2, result
    assert result.stderr.startswith("fastcore: error: setting reload (--reload): true cannot go with preload"), result
    assert result.stderr.count("\n") == 1


def test_reload_start_with_broken_app_waits_for_the_fix(tmp_path, no_fd_leak):
    (tmp_path / "app.py").write_text(BROKEN)
    env = {key: value for key, value in os.environ.items() if not key.startswith("FASTCORE_")}
    proc = subprocess.Popen([sys.executable, "-m", "fastcore", "serve", "app:app", "--reload", "--bind", "127.0.0.1:0"],
                            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    server = Server(proc, tmp_path)
    try:
        server.wait_for_stderr(r"fastcore: reload: waiting for the next change", timeout=DEADLINE)
        assert proc.poll() is None, server.stderr_text()  # it did not stop
        text = server.stderr_text()
        assert "fastcore: error: importing app:app raised SyntaxError" in text, text
        assert text.count("Traceback (most recent call last)") == 1, text

        (tmp_path / "app.py").write_text(APP.format(word="one"))
        server.wait_ready(1)
        assert server.request().body == b"one"
        assert server.stderr_text().count("Traceback (most recent call last)") == 1
    finally:
        status = server.stop()
    assert status == 0, server.stderr_text()


def test_reload_ignores_a_virtual_environment_made_in_the_project(serve):
    server = serve(APP.format(word="one"), "--reload")
    venv = server.dir / "env"
    venv.mkdir()
    (venv / "first.py").write_text("X = 1\n")  # a source directory so far: watched, and a reload
    server.wait_for_stderr(r"fastcore: reload: env(/first\.py)? changed")
    server.wait_for_stderr(r"reload done: generation 1 serving")
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")  # now a virtual environment: ignored
    (venv / "lib").mkdir()
    (venv / "lib" / "installed.py").write_text("X = 1\n")
    (venv / "first.py").write_text("X = 2\n")
    (server.dir / "app.py").write_text(APP.format(word="two"))
    wait_for_body(server, b"two")
    server.wait_for_stderr(r"fastcore: reload: (.*)app\.py changed")  # the events come in order
    changes = re.findall(r"^fastcore: reload: (.*) changed; restarting the workers$", server.stderr_text(), re.M)
    assert changes[1:] == ["app.py"], server.stderr_text()
