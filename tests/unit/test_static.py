"""fastcore._core.static: a Location built directly, not through the settings.

The settings parser keeps static_max_ranges at 64 or below; a Location made
another way (a test, an embedding program) may say more, and the bound must
hold where the ranges array is. The Location serves in a forked child, so a
crash there is a failed test, not a dead test run.
"""
import dataclasses
import os
import signal
import socket

import pytest

from fastcore._core.connection import Server
from fastcore._core.filecache import FileCache
from fastcore._core.loop import Loop
from fastcore._core.router import Router
from fastcore._core.static import Location
from fastcore.config import StaticLocation, build_config
from fastcore.wsgi import listener_environ

SIZE = 1000


@pytest.fixture
def location_server(tmp_path):
    """Factory: location_server(max_ranges) -> the port of a child process serving
    tmp_path at / through one Location with that max_ranges."""
    (tmp_path / "file.bin").write_bytes(bytes(i % 251 for i in range(SIZE)))
    children = []

    def start(max_ranges):
        config = dataclasses.replace(build_config(cli={}, environ={}), static_max_ranges=max_ranges)
        location = StaticLocation("/", str(tmp_path), index="index.html", autoindex=False, max_age=None,
                                  immutable=False, dotfiles=False, follow_symlinks=False, precompressed=False)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        port = sock.getsockname()[1]
        pid = os.fork()
        if pid == 0:
            try:
                loop = Loop()
                router = Router(None)
                router.add("/", Location(router, FileCache(config), location, config, b"0123456789abcdef"))
                server = Server(loop, router, config)
                server.listen(sock, listener_environ(config, "127.0.0.1", port))
                loop.call_later(30.0, loop.stop)  # bounded, should the test not stop it
                loop.run()
            finally:
                os._exit(0)
        sock.close()
        children.append(pid)
        return port, pid

    yield start
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)


def get_range(port, ranges):
    """(status line, headers text, body) of GET /file.bin with `Range: bytes=RANGES`."""
    with socket.create_connection(("127.0.0.1", port), timeout=5.0) as sock:
        sock.sendall(f"GET /file.bin HTTP/1.1\r\nHost: x\r\nRange: bytes={ranges}\r\n"
                     f"Connection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, _, headers = head.decode("latin-1").partition("\r\n")
    return status, headers, body


def alive(pid):
    done, status = os.waitpid(pid, os.WNOHANG)
    assert done == 0, f"the child serving the Location died: {status:#x} (signal {status & 0x7f})"
    return True


def single_bytes(count):
    return ",".join(f"{2 * i}-{2 * i}" for i in range(count))


def test_static_ranges_bounded_by_the_array_whatever_max_ranges_says(location_server):
    port, pid = location_server(1000)
    # as many parts as the array holds: a multipart answer
    status, headers, body = get_range(port, single_bytes(64))
    assert status == "HTTP/1.1 206 Partial Content", (status, headers)
    assert body.count(b"Content-Range: bytes ") == 64
    # more than the array holds, though max_ranges allows them: the whole file
    for count in (65, 200, 499):
        status, headers, body = get_range(port, single_bytes(count))
        assert status == "HTTP/1.1 200 OK", (count, status, headers)
        assert len(body) == SIZE
        assert alive(pid)


def test_static_ranges_under_the_array_follow_max_ranges(location_server):
    port, pid = location_server(3)
    assert get_range(port, single_bytes(3))[0] == "HTTP/1.1 206 Partial Content"
    assert get_range(port, single_bytes(4))[0] == "HTTP/1.1 200 OK"
    assert alive(pid)
