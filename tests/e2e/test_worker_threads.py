"""Where the application runs: inline on the loop, on threads, or `auto`
(the default: inline until a call is slow, then on threads for a while);
and a worker whose threads are all busy accepts nothing, so new clients go
to a worker that can serve them. Real `fastcore serve` processes."""
import select
import threading
import time

from tests.e2e.conftest import request_bytes

APP = '''
import os
import threading
import time


def app(environ, start_response):
    path = environ["PATH_INFO"]
    query = environ["QUERY_STRING"]
    if path == "/sleep":
        time.sleep(float(query))
    elif path == "/block" and query == str(os.getpid()):
        time.sleep(3)  # only the worker that was asked for blocks
    body = f"{os.getpid()} {threading.current_thread().name}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def pause(seconds):
    select.select([], [], [], seconds)


def ask(client, target):
    """(pid, thread name) of the worker thread that answered target."""
    client.send(request_bytes("GET", target))
    response = client.read_response()
    assert response.status == 200, response
    pid, thread = response.body.decode().split(" ", 1)
    return int(pid), thread


def test_threads_auto_inline_until_a_call_is_slow(serve):
    server = serve(APP, "--auto-threads-after", "0.05", "--auto-threads-hold", "1")
    with server.connect() as client:
        assert ask(client, "/")[1] == "MainThread"
        assert ask(client, "/sleep?0.01")[1] == "MainThread"  # under auto_threads_after: still inline
        assert ask(client, "/sleep?0.1")[1] == "MainThread"   # one slow call (a cold start, maybe): stays inline
        assert ask(client, "/")[1] == "MainThread"
        assert ask(client, "/sleep?0.1")[1] == "MainThread"   # the second within the hold: the next calls move
        assert ask(client, "/")[1].startswith("fastcore-app-")
        server.wait_for_stderr(r"an application call took \d+ ms \(auto_threads_after 0.05 s\), the second")
        # a slow call on a thread no longer holds the others
        with server.connect() as other:
            slow = threading.Thread(target=ask, args=(other, "/sleep?1.5"))
            slow.start()
            pause(0.2)
            started = time.monotonic()
            assert ask(client, "/")[1].startswith("fastcore-app-")
            answered_while_slow_runs = slow.is_alive()
            slow.join(timeout=10)
        assert answered_while_slow_runs, f"the quick call waited for the slow one ({time.monotonic() - started:.2f} s)"
        # auto_threads_hold (1 s) after the last slow call: inline again
        deadline = time.monotonic() + 5
        while ask(client, "/")[1] != "MainThread":
            assert time.monotonic() < deadline, "still on threads long after auto_threads_hold"
            pause(0.1)


def test_threads_one_stays_inline(serve):
    server = serve(APP, "--threads", "1", "--auto-threads-after", "0.01")
    with server.connect() as client:
        for target in ("/sleep?0.05", "/", "/sleep?0.05", "/"):
            assert ask(client, target)[1] == "MainThread"


def test_threads_fixed_count_always_on_threads(serve):
    server = serve(APP, "--threads", "3")
    with server.connect() as client:
        assert ask(client, "/")[1].startswith("fastcore-app-")


def test_threads_worker_with_every_thread_busy_takes_no_new_connection(serve):
    """Two workers of two threads each; both threads of worker A block.
    New connections must all be served, at once, by worker B (A would only
    queue them behind its blocked threads)."""
    server = serve(APP, "--workers", "2", "--threads", "2")
    clients = []
    try:
        by_worker = {}
        deadline = time.monotonic() + 10
        while not any(len(held) >= 2 for held in by_worker.values()):
            assert time.monotonic() < deadline, by_worker
            client = server.connect()
            clients.append(client)
            by_worker.setdefault(ask(client, "/")[0], []).append(client)
        busy = next(pid for pid, held in by_worker.items() if len(held) >= 2)
        for client in by_worker[busy][:2]:
            client.send(request_bytes("GET", f"/block?{busy}"))
        pause(0.3)
        served_by = []
        for _ in range(10):
            with server.connect(timeout=1.0) as client:
                served_by.append(ask(client, "/")[0])  # within the 1 s timeout: A's threads block for 3 s
        assert busy not in served_by and len(set(served_by)) == 1, (busy, served_by)
    finally:
        for client in clients:
            client.close()
