"""Static files over time: long downloads against send_timeout and a
graceful stop, a deploy that flips the root's symbolic link, keep-alive
promises kept across max_requests, and the answers that protect the worker
(overlapping ranges, long listings, links out of the root next to a file).
"""
import email.utils
import hashlib
import os
import signal
import socket
import time

import pytest

from tests.e2e.conftest import RawClient, request_bytes

SIZE = 8 * 1024 * 1024


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    data = os.urandom(SIZE)
    (root / "big.bin").write_bytes(data)
    (root / "a.txt").write_bytes(b"a" * 100)
    return root, data


def slow_download(port, path, pause_every, pause, timeout=60):
    """Reads path with a small receive window, pausing `pause` s every
    `pause_every` bytes; returns (head, body)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    try:
        sock.sendall(request_bytes("GET", path))
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int([line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")][0])
        chunks, got, next_pause = [body], len(body), pause_every
        deadline = time.monotonic() + timeout
        while got < length and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
            if got >= next_pause:
                next_pause += pause_every
                time.sleep(pause)
        return head, b"".join(chunks)
    finally:
        sock.close()


def test_send_timeout_limits_the_gap_between_writes_not_the_download(serve_files, site):
    root, data = site
    # about 16 pauses of 0.25 s: the whole download takes far longer than
    # send_timeout, but no gap between two writes does
    server = serve_files(root, "--send-timeout", "1")
    head, body = slow_download(server.port, "/big.bin", SIZE // 16, 0.25)
    assert head.startswith(b"HTTP/1.1 200 ")
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()


def test_graceful_stop_lets_a_download_in_flight_finish(serve_files, site):
    root, data = site
    server = serve_files(root, "--graceful-idle-timeout", "0.2")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", server.port))
    try:
        sock.sendall(request_bytes("GET", "/big.bin"))
        received = sock.recv(65536)
        os.kill(server.pid, signal.SIGTERM)
        time.sleep(0.6)  # past graceful_idle_timeout: an idle connection would be closed by now
        chunks = [received]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        whole = b"".join(chunks)
    finally:
        sock.close()
    head, _, body = whole.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert len(body) == SIZE and hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    assert server.stop() == 0


def test_a_deploy_flipping_the_root_link_is_followed(serve_files, tmp_path):
    for release in ("1", "2"):
        (tmp_path / "releases" / release).mkdir(parents=True)
        (tmp_path / "releases" / release / "version.txt").write_text(f"release {release}\n")
    current = tmp_path / "current"
    os.symlink(tmp_path / "releases" / "1", current)
    server = serve_files(tmp_path, "--static", f"/={current}")
    assert server.request(target="/version.txt").body == b"release 1\n"
    # how deploy tools flip: a new link renamed over the old one
    os.symlink(tmp_path / "releases" / "2", tmp_path / "current.new")
    os.rename(tmp_path / "current.new", current)
    deadline = time.monotonic() + 5
    body = b""
    while time.monotonic() < deadline:
        body = server.request(target="/version.txt").body
        if body == b"release 2\n":
            break
        time.sleep(0.1)
    assert body == b"release 2\n"


def test_keep_alive_promised_by_a_response_is_kept_across_max_requests(serve_files, site):
    root, _ = site
    server = serve_files(root, "--max-requests", "3")
    answered = 0
    with server.connect() as client:
        for _ in range(10):
            client.send(request_bytes("GET", "/a.txt"))
            response = client.read_response()
            assert response.status == 200 and response.body == b"a" * 100
            answered += 1
            if response.header("Connection") == "close":
                client.read_until_closed()
                break
            # no "Connection: close": the connection must take the next request
    assert answered == 3


def test_overlapping_ranges_adding_up_past_the_file_get_it_once(serve_files, site):
    root, data = site
    server = serve_files(root)
    response = server.request(target="/a.txt", headers=[("Range", "bytes=0-,0-,0-,0-")])
    assert (response.status, response.body) == (200, b"a" * 100)
    response = server.request(target="/a.txt", headers=[("Range", "bytes=0-9,20-29")])
    assert response.status == 206 and "multipart/byteranges" in response.header("Content-Type")


def test_if_range_with_a_wednesday_date_is_a_date(serve_files, site):
    root, _ = site
    wednesday = 1445436000  # Wed, 21 Oct 2015 14:00:00 GMT
    os.utime(root / "a.txt", (wednesday, wednesday))
    server = serve_files(root)
    date = email.utils.formatdate(wednesday, usegmt=True)
    assert date.startswith("Wed, ")
    response = server.request(target="/a.txt", headers=[("Range", "bytes=0-9"), ("If-Range", date)])
    assert (response.status, response.body) == (206, b"a" * 10)


def test_head_of_a_path_under_no_location_keeps_the_stream_in_step(serve_files, site):
    root, _ = site
    server = serve_files(root, "--static", f"/files={root}")
    with server.connect() as client:
        client.send(request_bytes("HEAD", "/nowhere") + request_bytes("GET", "/files/a.txt"))
        head = client.read_response("HEAD")
        assert head.status == 404 and head.header("Content-Length") == "14" and head.header("Date")
        response = client.read_response()
        assert (response.status, response.body) == (200, b"a" * 100)


def test_long_listing_is_cut_at_autoindex_max_entries(serve_files, tmp_path):
    root = tmp_path / "many"
    root.mkdir()
    for i in range(25):
        (root / f"file{i:02d}.txt").write_text("x")
    server = serve_files(root, "--autoindex", "--autoindex-max-entries", "10")
    body = server.request(target="/").body
    assert body.count(b"<tr><td><a href=\"file") == 10
    assert b"Only the first 10 entries are listed" in body


def test_precompressed_sibling_linked_out_of_the_root_is_not_offered(serve_files, tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    (root / "app.js").write_text("console.log(1)\n")
    (tmp_path / "outside.gz").write_bytes(b"not for you")
    os.symlink(tmp_path / "outside.gz", root / "app.js.gz")
    server = serve_files(root)
    response = server.request(target="/app.js", headers=[("Accept-Encoding", "gzip")])
    assert response.status == 200 and response.body == b"console.log(1)\n"
    assert response.header("Content-Encoding") is None and response.header("Vary") is None


def test_worker_out_of_descriptors_answers_503_then_recovers(adopt, tmp_path):
    import resource
    import subprocess
    import sys

    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text("<p>hi</p>\n")
    (root / "big.bin").write_bytes(os.urandom(200_000))  # over static_inline_max: needs a descriptor

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))

    proc = subprocess.Popen([sys.executable, "-m", "fastcore", "serve", "--bind", "127.0.0.1:0"], cwd=root,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=low_limit)
    server = adopt(proc, root)
    with server.connect() as client:
        client.send(request_bytes("GET", "/index.html"))
        assert client.read_response().status == 200
        hogs = []
        try:
            for _ in range(60):  # more connections than the worker has descriptors left
                hogs.append(socket.create_connection(("127.0.0.1", server.port)))
            deadline = time.monotonic() + 5
            while "Too many open files" not in server.stderr_text() and time.monotonic() < deadline:
                time.sleep(0.05)
            client.send(request_bytes("GET", "/big.bin"))
            response = client.read_response()
            assert response.status == 503 and response.header("Retry-After") == "1"
        finally:
            for hog in hogs:
                hog.close()
        # descriptors back: the file is served (and was never remembered as missing)
        deadline = time.monotonic() + 5
        while True:
            client.send(request_bytes("GET", "/big.bin"))
            response = client.read_response()
            if response.status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert response.status == 200 and len(response.body) == 200_000
    assert "cannot open big.bin: Too many open files" in server.stderr_text()


BLOCKING_APP = """
import os
import time

HERE = os.path.dirname(os.path.abspath(__file__))

def app(environ, start_response):
    # holds its thread until the test creates "release" (at most 20 s)
    open(os.path.join(HERE, "entered-%s" % environ["QUERY_STRING"]), "w").close()
    deadline = time.monotonic() + 20
    while not os.path.exists(os.path.join(HERE, "release")) and time.monotonic() < deadline:
        time.sleep(0.01)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"released"]
"""


def test_static_files_are_served_while_application_threads_are_busy(serve, tmp_path):
    # --threads: the application runs on a pool; the loop keeps answering
    # static requests, whatever the application is doing
    import threading

    root = tmp_path / "assets"
    root.mkdir()
    (root / "a.css").write_text("body{}\n")
    server = serve(BLOCKING_APP, "--threads", "4", "--static", f"/assets={root}")
    results = []
    callers = [threading.Thread(target=lambda i=i: results.append(server.request(target=f"/app?{i}").body))
               for i in range(4)]
    for caller in callers:
        caller.start()
    deadline = time.monotonic() + 10
    while len(list(server.dir.glob("entered-*"))) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(list(server.dir.glob("entered-*"))) == 4, "the application threads did not all start"
    try:
        for _ in range(20):  # every application thread is held: only the loop can answer these
            response = server.request(target="/assets/a.css")
            assert (response.status, response.body) == (200, b"body{}\n")
        assert results == []
    finally:
        (server.dir / "release").touch()
        for caller in callers:
            caller.join(20)
    assert results == [b"released"] * 4


def test_etag_without_inode_for_machines_behind_a_balancer(serve_files, site):
    root, _ = site
    info = os.stat(root / "a.txt")
    server = serve_files(root, "--no-etag-inode")
    response = server.request(target="/a.txt")
    assert response.header("ETag") == f'"{info.st_size:x}-{info.st_mtime_ns:x}"'
    assert server.request(target="/a.txt", headers=[("If-None-Match", response.header("ETag"))]).status == 304


def test_if_range_date_of_a_file_changed_just_now_is_weak(serve_files, site):
    # RFC 9110 8.8.2.2: a Last-Modified less than a second old is a weak
    # validator; If-Range needs a strong one, so the whole file comes back
    root, _ = site
    future = int(time.time()) + 3600  # "modified" later than now: never a second old
    os.utime(root / "a.txt", (future, future))
    server = serve_files(root)
    date = email.utils.formatdate(future, usegmt=True)
    response = server.request(target="/a.txt", headers=[("Range", "bytes=0-9"), ("If-Range", date)])
    assert (response.status, len(response.body)) == (200, 100)
    response = server.request(target="/a.txt", headers=[("Range", "bytes=0-9")])
    assert response.status == 206
