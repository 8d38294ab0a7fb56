"""WebSocket scopes of the ASGI gateway on `fastcore serve`: a FastAPI route
through the `websockets` client, and the spec's and RFC 6455's rules
checked with raw ASGI applications and raw frames on a socket."""
import asyncio
import base64
import json
import os
import signal
import socket
import struct
import time

import pytest
import websockets
from websockets.asyncio.client import connect

from .conftest import request_bytes

FASTAPI_WS_APP = '''
import os
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

HERE = os.path.dirname(__file__)
app = FastAPI()


def note(name, text):
    with open(os.path.join(HERE, name), "a") as f:
        f.write(text + "\\n")


@app.websocket("/echo")
async def echo(websocket: WebSocket):
    offered = websocket.scope["subprotocols"]
    await websocket.accept(subprotocol="chat" if "chat" in offered else None)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                note("echo.txt", "disconnect %d" % message["code"])
                return
            if message.get("text") == "close please":
                await websocket.close(4001, "as asked")
                note("echo.txt", "closed 4001")
                return
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            else:
                await websocket.send_bytes(message["bytes"])
    finally:
        note("echo.txt", "finally")
'''

RAW_WS_APP = '''
import asyncio, json, os
HERE = os.path.dirname(__file__)


def note(name, text):
    with open(os.path.join(HERE, name), "a") as f:
        f.write(text + "\\n")


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    assert scope["type"] == "websocket"
    path = scope["path"]
    if path == "/events":
        # every event in order, until the disconnect, then all of them in a file
        events = [{"scope": {k: scope[k] for k in ("type", "scheme", "path", "query_string", "subprotocols",
                                                  "asgi", "http_version")},
                   "has_method": "method" in scope}]
        events[0]["scope"]["query_string"] = scope["query_string"].decode()
        events.append(await receive())
        await send({"type": "websocket.accept", "subprotocol": "v2",
                    "headers": [(b"x-accepted", b"yes")]})
        while True:
            message = await receive()
            if "bytes" in message and message["bytes"] is not None:
                message = dict(message, bytes=message["bytes"].hex())
            events.append(message)
            if message["type"] == "websocket.disconnect":
                break
            await send({"type": "websocket.send", "text": json.dumps(message)})
        note("events.json", json.dumps(events))
    elif path == "/echo":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                note("disconnect.txt", "disconnect %d" % message["code"])
                return
            await send({"type": "websocket.send", "bytes": message.get("bytes"), "text": message.get("text")})
    elif path == "/deny":
        await receive()
        await send({"type": "websocket.http.response.start", "status": 401,
                    "headers": [(b"content-type", b"text/plain"), (b"www-authenticate", b"Bearer")]})
        await send({"type": "websocket.http.response.body", "body": b"who are ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"you?"})
    elif path == "/close-first":
        await receive()
        await send({"type": "websocket.close"})
    elif path == "/flood":
        # sends 64 KiB messages to a client that reads nothing, noting how many send() accepted
        await receive()
        await send({"type": "websocket.accept"})
        piece = b"z" * 65536
        for i in range(1024):
            await send({"type": "websocket.send", "bytes": piece})
            with open(os.path.join(HERE, "sent.tmp"), "w") as f:
                f.write(str((i + 1) * len(piece)))
            os.replace(os.path.join(HERE, "sent.tmp"), os.path.join(HERE, "sent.txt"))
    elif path == "/hold":
        # waits for the end, whatever brings it; the finally is the cleanup a stop must let run
        await receive()
        await send({"type": "websocket.accept"})
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    note("hold.txt", "disconnect %d" % message["code"])
                    return
        finally:
            await asyncio.sleep(0.2)  # cleanup that takes a while, still awaited before the worker ends
            note("hold.txt", "finally")
'''

KEY = base64.b64encode(b"0123456789abcdef").decode()


def wait_for_file(path, text, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return path.read_text()
        time.sleep(0.02)
    raise AssertionError(f"{text!r} not in {path} within {timeout} s: "
                         f"{path.read_text() if path.exists() else 'no file'}")


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 10))


# ---- a raw WebSocket client: frames as the tests want them, masked or not --------


def client_frame(opcode, payload, fin=True, mask=True, rsv=0):
    first = (0x80 if fin else 0) | rsv | opcode
    length = len(payload)
    if length < 126:
        head = bytes([first, (0x80 if mask else 0) | length])
    elif length < 65536:
        head = bytes([first, (0x80 if mask else 0) | 126]) + struct.pack("!H", length)
    else:
        head = bytes([first, (0x80 if mask else 0) | 127]) + struct.pack("!Q", length)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class RawWebSocket:
    def __init__(self, port, path="/echo", headers=()):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        fields = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Key", KEY),
                  ("Sec-WebSocket-Version", "13"), *headers]
        self.sock.sendall(request_bytes("GET", path, fields))
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            data = self.sock.recv(65536)
            assert data, "closed during the handshake"
            self.buffer += data
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        self.head = head.decode("latin-1")
        assert self.head.startswith("HTTP/1.1 101 "), self.head

    def send(self, data):
        self.sock.sendall(data)

    def _need(self, n):
        while len(self.buffer) < n:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("connection closed")
            self.buffer += data

    def read_frame(self):
        """(fin, opcode, payload) of the server's next frame (never masked)."""
        self._need(2)
        first, second = self.buffer[0], self.buffer[1]
        assert not second & 0x80, "a server frame is never masked"
        length, at = second & 0x7F, 2
        if length == 126:
            self._need(4)
            length, at = struct.unpack("!H", self.buffer[2:4])[0], 4
        elif length == 127:
            self._need(10)
            length, at = struct.unpack("!Q", self.buffer[2:10])[0], 10
        self._need(at + length)
        payload, self.buffer = self.buffer[at:at + length], self.buffer[at + length:]
        return bool(first & 0x80), first & 0x0F, payload

    def read_close(self):
        """The server's close frame (data frames before it skipped): (code, reason)."""
        while True:
            fin, opcode, payload = self.read_frame()
            if opcode == 0x8:
                return struct.unpack("!H", payload[:2])[0], payload[2:].decode()

    def read_until_closed(self):
        self.sock.settimeout(5)
        while True:
            data = self.sock.recv(65536)
            if not data:
                return

    def close(self):
        self.sock.close()


# ---- a FastAPI route through the websockets client -----------------------------


def test_fastapi_echo_subprotocol_and_close_codes_on_both_sides(serve):
    server = serve(FASTAPI_WS_APP)
    url = f"ws://127.0.0.1:{server.port}/echo"

    async def talk():
        async with connect(url, subprotocols=["chat"]) as ws:
            assert ws.subprotocol == "chat"
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00\x01\xff")
            assert await ws.recv() == b"\x00\x01\xff"
            await ws.send("ü" * 70000)  # a 64-bit length frame, compressed (per-message-deflate)
            assert await ws.recv() == "ü" * 70000
            await ws.close(4000, "client done")
        assert ws.close_code == 4000  # the server echoed the client's code

        async with connect(url, compression=None) as ws:
            assert ws.subprotocol is None
            await ws.send("close please")
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
        assert closed.value.rcvd.code == 4001 and closed.value.rcvd.reason == "as asked"

    run(talk())
    text = wait_for_file(server.dir / "echo.txt", "closed 4001")
    assert text.splitlines() == ["disconnect 4000", "finally", "closed 4001", "finally"]


def test_per_message_deflate_agreed_only_when_allowed(serve):
    on = serve(FASTAPI_WS_APP)
    off = serve(FASTAPI_WS_APP, "--no-ws-per-message-deflate")

    async def extensions(port):
        async with connect(f"ws://127.0.0.1:{port}/echo") as ws:
            await ws.send("x" * 5000)
            assert await ws.recv() == "x" * 5000
            return ws.response.headers.get("Sec-WebSocket-Extensions")

    assert run(extensions(on.port)).startswith("permessage-deflate")
    assert run(extensions(off.port)) is None


# ---- the spec's rules with raw ASGI applications ---------------------------------


def test_raw_events_in_order_scope_and_accept_headers(serve):
    server = serve(RAW_WS_APP)
    url = f"ws://127.0.0.1:{server.port}/events?room=1"

    async def talk():
        async with connect(url, subprotocols=["v1", "v2"], compression=None) as ws:
            assert ws.subprotocol == "v2"
            assert ws.response.headers["x-accepted"] == "yes"
            await ws.send("one")
            assert json.loads(await ws.recv()) == {"type": "websocket.receive", "text": "one"}
            await ws.send(b"\x02")
            assert json.loads(await ws.recv())["bytes"] == "02"
            await ws.close(1000)

    run(talk())
    events = json.loads(wait_for_file(server.dir / "events.json", "disconnect"))
    assert events[0] == {"scope": {"type": "websocket", "scheme": "ws", "path": "/events", "query_string": "room=1",
                                   "subprotocols": ["v1", "v2"], "asgi": {"version": "3.0", "spec_version": "2.3"},
                                   "http_version": "1.1"},
                         "has_method": False}
    assert [e["type"] for e in events[1:]] == ["websocket.connect", "websocket.receive", "websocket.receive",
                                               "websocket.disconnect"]
    assert events[2]["text"] == "one" and events[3]["bytes"] == "02"
    assert events[4]["code"] == 1000


def test_message_over_ws_max_size_is_closed_with_1009(serve):
    server = serve(RAW_WS_APP, "--ws-max-size", "1k")

    async def talk():
        async with connect(f"ws://127.0.0.1:{server.port}/echo", compression=None) as ws:
            await ws.send("a" * 1024)  # at the limit: taken
            assert await ws.recv() == "a" * 1024
            await ws.send("a" * 1025)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
        return closed.value.rcvd.code

    assert run(talk()) == 1009
    assert wait_for_file(server.dir / "disconnect.txt", "disconnect") == "disconnect 1009\n"


def test_fragmented_message_is_reassembled_with_a_ping_between_fragments(serve):
    server = serve(RAW_WS_APP)
    ws = RawWebSocket(server.port)
    ws.send(client_frame(0x1, b"hello ", fin=False))
    ws.send(client_frame(0x0, "wörld".encode()[:3], fin=False))  # a fragment ends inside a character
    ws.send(client_frame(0x9, b"between"))  # control frames may come between fragments
    ws.send(client_frame(0x0, "wörld".encode()[3:], fin=True))
    assert ws.read_frame() == (True, 0xA, b"between")
    assert ws.read_frame() == (True, 0x1, "hello wörld".encode())
    ws.close()


def test_ping_is_answered_with_its_payload(serve):
    server = serve(RAW_WS_APP)
    ws = RawWebSocket(server.port)
    ws.send(client_frame(0x9, b"are you there"))
    assert ws.read_frame() == (True, 0xA, b"are you there")
    ws.send(client_frame(0x8, struct.pack("!H", 1000)))
    assert ws.read_frame() == (True, 0x8, struct.pack("!H", 1000))
    ws.read_until_closed()
    ws.close()


def test_invalid_utf8_in_text_is_closed_with_1007(serve):
    server = serve(RAW_WS_APP)
    ws = RawWebSocket(server.port)
    ws.send(client_frame(0x1, b"valid, then \xff\xfe"))
    assert ws.read_close()[0] == 1007
    ws.read_until_closed()
    ws.close()
    assert wait_for_file(server.dir / "disconnect.txt", "disconnect") == "disconnect 1007\n"


def test_unmasked_client_frame_is_closed_with_1002(serve):
    server = serve(RAW_WS_APP)
    ws = RawWebSocket(server.port)
    ws.send(client_frame(0x1, b"plain", mask=False))
    assert ws.read_close()[0] == 1002
    ws.read_until_closed()
    ws.close()
    assert wait_for_file(server.dir / "disconnect.txt", "disconnect") == "disconnect 1002\n"


def test_denial_response_close_before_accept_and_bad_handshakes(serve):
    server = serve(RAW_WS_APP)
    upgrade = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Key", KEY)]
    denied = server.request("GET", "/deny", upgrade + [("Sec-WebSocket-Version", "13")])
    assert (denied.status, denied.body) == (401, b"who are you?")
    assert denied.header("www-authenticate") == "Bearer"
    assert server.request("GET", "/close-first", upgrade + [("Sec-WebSocket-Version", "13")]).status == 403
    wrong_version = server.request("GET", "/echo", upgrade + [("Sec-WebSocket-Version", "8")])
    assert wrong_version.status == 426 and wrong_version.header("sec-websocket-version") == "13"
    no_key = server.request("GET", "/echo", [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                             ("Sec-WebSocket-Version", "13")])
    assert no_key.status == 400
    short_key = server.request("GET", "/echo", [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                                ("Sec-WebSocket-Key", "c2hvcnQ="), ("Sec-WebSocket-Version", "13")])
    assert short_key.status == 400
    no_connection = server.request("GET", "/echo", [("Upgrade", "websocket"), ("Sec-WebSocket-Key", KEY),
                                                    ("Sec-WebSocket-Version", "13")])
    assert no_connection.status == 400


def test_client_that_vanishes_gives_the_application_a_disconnect(serve):
    server = serve(RAW_WS_APP)
    ws = RawWebSocket(server.port)
    ws.send(client_frame(0x1, b"still here"))
    assert ws.read_frame() == (True, 0x1, b"still here")
    ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.close()  # no close frame: a reset
    assert wait_for_file(server.dir / "disconnect.txt", "disconnect") == "disconnect 1006\n"


def test_sigterm_closes_open_websockets_with_1001_and_their_cleanup_runs(serve):
    server = serve(RAW_WS_APP)

    async def talk():
        async with connect(f"ws://127.0.0.1:{server.port}/hold") as ws:
            await ws.send("hi")
            os.kill(server.pid, signal.SIGTERM)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
        return closed.value.rcvd.code

    assert run(talk()) == 1001
    assert server.stop() == 0
    assert (server.dir / "hold.txt").read_text() == "disconnect 1001\nfinally\n"


def test_slow_reader_does_not_grow_the_servers_queue(serve):
    server = serve(RAW_WS_APP)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.sendall(request_bytes("GET", "/flood", [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                                 ("Sec-WebSocket-Key", KEY), ("Sec-WebSocket-Version", "13")]))
    sent = server.dir / "sent.txt"
    deadline = time.monotonic() + 5
    while not sent.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    rss_before = server.rss_kib()
    time.sleep(1.0)  # the client reads nothing meanwhile
    accepted = int(sent.read_text())
    # send() waits once the output passes write_buffer_high: the socket
    # buffers plus one high-water mark, far from the 64 MiB the application has
    assert accepted < 16 << 20, accepted
    assert server.rss_kib() - rss_before < 32 << 10
    total = 0
    while total < (64 << 20) + 1024 * 10:
        data = sock.recv(1 << 20)
        if not data:
            break
        total += len(data)
    sock.close()
    assert total >= 64 << 20  # every message reached the client in the end
    assert wait_for_file(sent, str(64 << 20))


def test_reload_closes_open_websockets_with_1001_and_serves_on(serve):
    server = serve(RAW_WS_APP)

    async def talk():
        async with connect(f"ws://127.0.0.1:{server.port}/hold") as ws:
            await ws.send("hi")
            os.kill(server.pid, signal.SIGHUP)  # new workers; the old one stops gracefully
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
        code = closed.value.rcvd.code
        async with connect(f"ws://127.0.0.1:{server.port}/echo") as ws:  # a new worker answers
            await ws.send("after the reload")
            return code, await ws.recv()

    assert run(talk()) == (1001, "after the reload")
    assert wait_for_file(server.dir / "hold.txt", "finally") == "disconnect 1001\nfinally\n"


def test_client_that_does_not_answer_pings_is_closed_with_1011(serve):
    server = serve(RAW_WS_APP, "--ws-ping-interval", "0.2", "--ws-ping-timeout", "0.3")
    ws = RawWebSocket(server.port)
    fin, opcode, payload = ws.read_frame()
    assert (fin, opcode) == (True, 0x9)  # the server's ping; not answered
    assert ws.read_close()[0] == 1011
    ws.read_until_closed()
    ws.close()
    assert wait_for_file(server.dir / "disconnect.txt", "disconnect") == "disconnect 1011\n"


def test_pings_answered_keep_the_websocket_open(serve):
    server = serve(RAW_WS_APP, "--ws-ping-interval", "0.2", "--ws-ping-timeout", "1")
    ws = RawWebSocket(server.port)
    for _ in range(8):  # eight pings answered, over more than the timeout
        fin, opcode, payload = ws.read_frame()
        assert opcode == 0x9
        ws.send(client_frame(0xA, payload))
    ws.send(client_frame(0x1, b"still open"))
    while True:
        fin, opcode, payload = ws.read_frame()
        if opcode != 0x9:
            break
    assert (opcode, payload) == (0x1, b"still open")
    ws.close()


def test_messages_the_application_does_not_take_pause_reading(serve):
    # the application never calls receive() after accepting: what the server
    # holds for it stays near write_buffer_high while the client keeps sending
    server = serve('''
import asyncio, os
HERE = os.path.dirname(__file__)

async def app(scope, receive, send):
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    await asyncio.sleep(3600)
''', "--lifespan", "off", "--write-buffer-high", "64k", "--graceful-timeout", "1")  # it never ends by itself
    ws = RawWebSocket(server.port)
    ws.sock.setblocking(False)
    message = client_frame(0x2, b"m" * 65536)
    sent = 0
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and sent < 64 << 20:
        try:
            sent += ws.sock.send(message[sent % len(message):])
        except BlockingIOError:
            time.sleep(0.01)
    # the client could not get far: the server stopped reading (socket buffers and a high-water mark)
    assert sent < 16 << 20, sent
    ws.close()
