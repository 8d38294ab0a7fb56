"""Faults inside one worker: out of descriptors at accept and while a body
spools, a handler that raises, and responses held behind an inline
application. Real `fastcore serve` processes; the worker's descriptor limit
is lowered from outside with prlimit (the worker raises its own soft limit
at start, so `ulimit -n` before the start would not stay)."""
import hashlib
import os
import resource
import select
import socket
import struct
import threading
import time

from tests.e2e.conftest import descriptors, request_bytes

APP = '''
import hashlib
import os
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/upload":
        data = environ["wsgi.input"].read()
        body = f"{len(data)} {hashlib.sha256(data).hexdigest()} {environ.get('CONTENT_LENGTH')}".encode()
        with open(os.path.join(HERE, "uploads.log"), "a") as f:
            f.write(body.decode() + "\\n")
    elif path == "/slow":
        time.sleep(0.4)
        with open(os.path.join(HERE, "ends.log"), "a") as f:
            f.write(f"{time.time()}\\n")
        body = b"slow"
    else:
        body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def sockets_of(pid):
    return sum(target.startswith("socket:") for target in descriptors(pid))


def worker_of(server):
    """The worker's pid, once it has closed the connection that asked (only
    its listening socket left), so its descriptor count is its resting one."""
    with server.connect() as client:
        client.send(request_bytes("GET", "/pid", headers=[("Connection", "close")]))
        pid = int(client.read_response().body)
    deadline = time.monotonic() + 5
    while sockets_of(pid) > 1 and time.monotonic() < deadline:
        select.select([], [], [], 0.01)
    assert sockets_of(pid) == 1
    return pid


def hold_connections(server, count):
    """count keep-alive connections, each with one request answered (so the
    worker has accepted it and holds its descriptor)."""
    held = []
    for _ in range(count):
        client = server.connect()
        client.send(request_bytes("GET", "/pid"))
        assert client.read_response().status == 200
        held.append(client)
    return held


def test_worker_out_of_descriptors_answers_503_then_recovers(serve):
    """At the descriptor limit a new client gets 503 with Retry-After (not
    silence), /health says overloaded, and once descriptors are back the
    worker accepts and answers again."""
    server = serve(APP, "--admin", "127.0.0.1:0", "--accept-backoff", "0.05")
    admin_port = int(server.wait_for_stderr(r"admin on http://127\.0\.0\.1:(\d+)").group(1))
    pid = worker_of(server)
    limit = open_fds(pid) + 4
    hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)[1]
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, hard))
    held = hold_connections(server, 4)
    try:
        with server.connect() as extra:
            extra.send(request_bytes("GET", "/pid"))
            response = extra.read_response()
            assert response.status == 503, response
            assert response.header("Retry-After") == "1"
            assert response.header("Connection") == "close"
        with socket.create_connection(("127.0.0.1", admin_port), timeout=5) as admin:
            admin.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := admin.recv(4096):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 503") and b"overloaded: 1 of 1 workers" in answer, (answer, server.stderr_text())
    finally:
        for client in held:
            client.close()
    deadline = time.monotonic() + 5
    while True:
        with server.connect() as client:
            client.send(request_bytes("GET", "/pid"))
            response = client.read_response()
        if response.status == 200 or time.monotonic() > deadline:
            break
        select.select([], [], [], 0.05)
    assert response.status == 200 and int(response.body) == pid
    assert server.proc.poll() is None
    assert "answering waiting clients 503" in server.stderr_text()


def test_worker_body_spool_without_descriptors_is_503_never_truncated(serve):
    """A body over body_buffer_size spools to a file; when that file cannot
    be opened the request ends with 503, the application never sees a part
    of the body; the next upload, with descriptors back, arrives whole."""
    server = serve(APP, "--body-buffer-size", "64k")
    pid = worker_of(server)
    limit = open_fds(pid) + 2
    hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)[1]
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, hard))
    body = os.urandom(2 * 1024 * 1024)
    held = hold_connections(server, 1)
    try:
        with server.connect() as client:
            client.send(request_bytes("POST", "/upload", headers=[("Content-Length", str(len(body)))]))
            try:
                client.send(body)
            except OSError:
                pass  # the server may answer and close before it has read it all
            response = client.read_response()
        assert response.status == 503, (response, server.stderr_text())
        assert response.header("Connection") == "close"
    finally:
        for client in held:
            client.close()
    assert not os.path.exists(os.path.join(server.dir, "uploads.log")), "the application saw part of a body"
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit + 16, hard))
    with server.connect() as client:
        client.send(request_bytes("POST", "/upload", headers=[("Content-Length", str(len(body)))], body=body))
        response = client.read_response()
    assert response.status == 200
    assert response.body.decode() == f"{len(body)} {hashlib.sha256(body).hexdigest()} {len(body)}"
    assert "error in Gateway.on_body" in server.stderr_text()
    assert server.proc.poll() is None


def test_worker_inline_responses_leave_when_each_is_done(serve):
    """Four slow requests on four connections, one inline worker: each
    response leaves when its application call returns, not once the whole
    batch has run (which would hold the first until the last is done)."""
    server = serve(APP, "--threads", "1")
    clients = [server.connect() for _ in range(4)]
    arrived = []
    lock = threading.Lock()

    def read(client):
        response = client.read_response()
        with lock:
            arrived.append((time.time(), response.status))

    try:
        readers = [threading.Thread(target=read, args=(client,)) for client in clients]
        for thread in readers:
            thread.start()
        for client in clients:
            client.send(request_bytes("GET", "/slow"))
        for thread in readers:
            thread.join(timeout=15)
    finally:
        for client in clients:
            client.close()
    assert [status for _, status in arrived] == [200] * 4
    with open(os.path.join(server.dir, "ends.log")) as f:
        ends = sorted(float(line) for line in f)
    arrivals = sorted(when for when, _ in arrived)
    # response i is out before application call i+1 has finished
    for i in range(3):
        assert arrivals[i] < ends[i + 1], (arrivals, ends)


def test_worker_survives_a_client_reset_in_the_middle_of_a_response(serve):
    """A client that resets its connection while the worker is writing a
    large response (the write fails with ECONNRESET or EPIPE): the worker
    closes that connection and keeps serving. Wave 1 raised an error with no
    exception set from the write path here, which ended the worker."""
    server = serve(APP.replace('body = str(os.getpid()).encode()',
                               'body = str(os.getpid()).encode() if path != "/big" else b"x" * (32 << 20)'))
    pid = worker_of(server)
    for _ in range(5):
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(request_bytes("GET", "/big"))
        assert sock.recv(4096)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close -> RST
        sock.close()
    assert worker_of(server) == pid, "the worker was replaced"
    assert server.proc.poll() is None
    assert "returned NULL without setting an exception" not in server.stderr_text()
