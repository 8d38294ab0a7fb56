"""ASGI applications on `fastcore serve`: FastAPI and Starlette through real
clients, and the ASGI HTTP spec's rules checked with small raw applications."""
import hashlib
import json
import os
import socket
import subprocess
import sys
import time

import fastapi  # noqa: F401  (a test dependency: fail here if it is missing)
import httpx
import pytest
import requests

from .conftest import request_bytes

FASTAPI_APP = '''
import asyncio, contextlib, hashlib, os, threading
from fastapi import BackgroundTasks, Depends, FastAPI, Request, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

HERE = os.path.dirname(__file__)
events = []


@contextlib.asynccontextmanager
async def lifespan(app):
    yield {"db": "connected"}
    with open(os.path.join(HERE, "shutdown.txt"), "w") as f:
        f.write("shut down")


app = FastAPI(lifespan=lifespan)


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str = "none"):
    return {"item_id": item_id, "q": q}


@app.post("/items")
async def create_item(item: Item):
    return {"name": item.name, "total": item.price * 2, "tags": item.tags}


@app.get("/stream")
async def stream():
    async def chunks():
        for i in range(5):
            await asyncio.sleep(0.01)
            yield f"chunk {i}\\n".encode()
    return StreamingResponse(chunks(), media_type="text/plain")


@app.post("/upload")
async def upload(file: UploadFile):
    digest = hashlib.sha256()
    size = 0
    while True:
        block = await file.read(1 << 20)
        if not block:
            break
        size += len(block)
        digest.update(block)
    return {"filename": file.filename, "size": size, "sha256": digest.hexdigest()}


def write_marker(name, text):
    with open(os.path.join(HERE, name), "w") as f:
        f.write(text)


@app.post("/background")
async def background(tasks: BackgroundTasks):
    tasks.add_task(write_marker, "background.txt", "done after the response")
    return {"queued": True}


async def resource():
    events.append("setup")
    try:
        yield "the resource"
    finally:
        events.append("teardown")


@app.get("/dependency")
async def dependency(value: str = Depends(resource)):
    return {"value": value, "events": list(events)}


@app.get("/events")
async def get_events():
    return {"events": list(events)}


@app.get("/sync")
def sync_view():
    return {"thread": threading.current_thread().name, "main": threading.main_thread().name}


@app.get("/state")
async def state(request: Request):
    return {"db": request.state.db, "loop": type(asyncio.get_running_loop()).__module__}
'''


def test_fastapi_path_query_json_and_lifespan_state(serve):
    server = serve(FASTAPI_APP, "--asyncio-loop", "asyncio")
    with requests.Session() as session:
        item = session.get(f"{server.url}/items/42?q=blue", timeout=10)
        assert item.status_code == 200
        assert item.headers["content-type"] == "application/json"
        assert item.json() == {"item_id": 42, "q": "blue"}
        assert session.get(f"{server.url}/items/forty", timeout=10).status_code == 422  # FastAPI's validation
        created = session.post(f"{server.url}/items", json={"name": "pen", "price": 1.5, "tags": ["a", "b"]},
                               timeout=10)
        assert created.json() == {"name": "pen", "total": 3.0, "tags": ["a", "b"]}
        assert session.get(f"{server.url}/missing", timeout=10).status_code == 404
        state = session.get(f"{server.url}/state", timeout=10).json()
        assert state["db"] == "connected"  # lifespan state shared into the scope
        assert state["loop"].startswith("asyncio")
    assert server.stop() == 0
    assert (server.dir / "shutdown.txt").read_text() == "shut down"  # the lifespan shutdown ran


def test_fastapi_streamed_response_is_chunked(serve):
    server = serve(FASTAPI_APP)
    with server.connect() as client:
        client.send(request_bytes("GET", "/stream"))
        response = client.read_response()
    assert response.status == 200
    assert response.header("Transfer-Encoding") == "chunked"
    assert response.body == b"".join(b"chunk %d\n" % i for i in range(5))
    with httpx.Client(timeout=10) as http:
        with http.stream("GET", f"{server.url}/stream") as streamed:
            pieces = list(streamed.iter_lines())
    assert pieces == [f"chunk {i}" for i in range(5)]


def test_fastapi_upload_of_50_mib(serve):
    server = serve(FASTAPI_APP, "--max-body", "64m")  # over the default 16m
    payload = os.urandom(1 << 20) * 50
    response = requests.post(f"{server.url}/upload", files={"file": ("big.bin", payload)}, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json() == {"filename": "big.bin", "size": len(payload),
                               "sha256": hashlib.sha256(payload).hexdigest()}


def test_fastapi_background_task_dependency_with_yield_and_sync_view(serve):
    server = serve(FASTAPI_APP)
    with requests.Session() as session:
        assert session.post(f"{server.url}/background", timeout=10).json() == {"queued": True}
        marker = server.dir / "background.txt"
        deadline = time.monotonic() + 5
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert marker.read_text() == "done after the response"

        during = session.get(f"{server.url}/dependency", timeout=10).json()
        assert during == {"value": "the resource", "events": ["setup"]}
        # the teardown after the yield ran once the response was sent
        assert session.get(f"{server.url}/events", timeout=10).json() == {"events": ["setup", "teardown"]}

        sync = session.get(f"{server.url}/sync", timeout=10).json()
        assert sync["thread"] != sync["main"]  # a sync view runs in the framework's thread pool


STARLETTE_APP = '''
import contextvars
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

request_tag = contextvars.ContextVar("request_tag", default=None)


class Tag(BaseHTTPMiddleware):
    async def dispatch(self, request, call_next):
        seen = request_tag.get()
        request_tag.set(request.query_params.get("tag"))
        response = await call_next(request)
        response.headers["X-Tag"] = str(request.query_params.get("tag"))
        response.headers["X-Seen-Before"] = str(seen)
        return response


class PureHeader:
    """A pure ASGI middleware: adds a header to every response."""
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        async def send_with_header(message):
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + [(b"x-pure", b"yes")]
            await send(message)
        await self.app(scope, receive, send_with_header)


async def home(request):
    return JSONResponse({"tag": request_tag.get(), "path": request.url.path})


async def echo(request):
    return PlainTextResponse((await request.body())[::-1])


app = Starlette(routes=[Route("/", home), Route("/echo", echo, methods=["POST"])],
                middleware=[Middleware(PureHeader), Middleware(Tag)])
'''


def test_starlette_middlewares_and_per_request_contextvars(serve):
    server = serve(STARLETTE_APP)
    with requests.Session() as session:
        for tag in ("one", "two", "three"):
            response = session.get(f"{server.url}/?tag={tag}", timeout=10)
            assert response.json() == {"tag": tag, "path": "/"}
            assert response.headers["X-Tag"] == tag
            assert response.headers["X-Pure"] == "yes"
            # each request starts with a fresh context: the previous request's value is not seen
            assert response.headers["X-Seen-Before"] == "None"
        assert session.post(f"{server.url}/echo", data=b"abcdef", timeout=10).content == b"fedcba"


# ---- the spec's rules, with raw applications ---------------------------------

RAW_APP = '''
import asyncio, json, os
HERE = os.path.dirname(__file__)


def note(name, text):
    with open(os.path.join(HERE, name), "a") as f:
        f.write(text + "\\n")


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        message = await receive()
        scope["state"]["started"] = "yes"
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    path = scope["path"]
    if path.endswith("/events"):
        # every receive() until the body ends, then the events as JSON, streamed in three pieces
        received = []
        while True:
            message = await receive()
            received.append({"type": message["type"], "size": len(message.get("body", b"")),
                             "more_body": message.get("more_body", False)})
            if not message.get("more_body"):
                break
        body = json.dumps({"received": received, "scope": {
            "method": scope["method"], "path": scope["path"], "raw_path": scope["raw_path"].decode(),
            "query_string": scope["query_string"].decode(), "http_version": scope["http_version"],
            "headers": [[n.decode(), v.decode()] for n, v in scope["headers"]],
            "client": list(scope["client"]), "state": scope["state"], "asgi": scope["asgi"]}}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        third = len(body) // 3
        await send({"type": "http.response.body", "body": body[:third], "more_body": True})
        await send({"type": "http.response.body", "body": body[third:2 * third], "more_body": True})
        await send({"type": "http.response.body", "body": body[2 * third:]})
    elif path == "/forever":
        # streams until the client goes; records how it learnt that
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            while True:
                await send({"type": "http.response.body", "body": b"x" * 1024, "more_body": True})
                await asyncio.sleep(0.02)
        except OSError as error:
            note("forever.txt", "send raised " + type(error).__name__)
        message = await receive()
        note("forever.txt", "receive gave " + message["type"])
    elif path == "/longpoll":
        # the body, then nothing but waiting: the client's end must still come as http.disconnect
        while (await receive()).get("more_body"):
            pass
        message = await receive()
        note("longpoll.txt", "receive gave " + message["type"])
    elif path == "/big":
        # 64 MiB in 64 KiB pieces, noting how much send() has accepted
        piece = b"y" * 65536
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"%d" % (len(piece) * 1024))]})
        for i in range(1024):
            await send({"type": "http.response.body", "body": piece, "more_body": i < 1023})
            # written aside, then renamed: the test never reads a half-written count
            with open(os.path.join(HERE, "sent.tmp"), "w") as f:
                f.write(str((i + 1) * len(piece)))
            os.replace(os.path.join(HERE, "sent.tmp"), os.path.join(HERE, "sent.txt"))
    elif path == "/head":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1")]})
        await send({"type": "http.response.body", "body": b"twelve bytes"})
    elif path == "/nocontent":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/raise":
        raise RuntimeError("the application failed")
    elif path == "/file":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.pathsend", "path": os.path.join(HERE, "data.txt")})
    elif path == "/who":
        # the client and scheme, the events' awaitables handed to asyncio as tasks and futures are
        await asyncio.wait_for(send({"type": "http.response.start", "status": 200, "headers": []}), 5)
        await asyncio.ensure_future(send({"type": "http.response.body", "body": json.dumps(
            {"client": scope["client"], "scheme": scope["scheme"], "server": scope["server"]}).encode()}))
    elif path == "/scope-extensions":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": json.dumps(sorted(scope["extensions"])).encode()})
    elif path == "/zerocopy":
        # one part: from the file's position (moved there first) to its end
        await send({"type": "http.response.start", "status": 200, "headers": []})
        with open(os.path.join(HERE, "data.txt"), "rb") as f:
            f.seek(5)
            await send({"type": "http.response.zerocopysend", "file": f})
    elif path == "/zerocopy-parts":
        # parts with offsets and counts, a body between them, then a part from
        # the position the first position-less part left: a streamed response
        await send({"type": "http.response.start", "status": 200, "headers": []})
        with open(os.path.join(HERE, "data.txt"), "rb") as f:
            await send({"type": "http.response.zerocopysend", "file": f, "offset": 9, "count": 4,
                        "more_body": True})
            await send({"type": "http.response.body", "body": b"|", "more_body": True})
            await send({"type": "http.response.zerocopysend", "file": f, "count": 4, "more_body": True})
            await send({"type": "http.response.zerocopysend", "file": f.fileno(), "count": 2, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
    else:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"hello " + path.encode()})
'''


def test_raw_events_in_order_more_body_and_scope(serve):
    server = serve(RAW_APP)
    with server.connect() as client:
        client.send(b"POST /events/../events?x=1&y=%20 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                    b"X-Custom: A\r\n\r\n")
        for piece in (b"abc", b"defgh", b"ij"):
            client.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            time.sleep(0.1)  # separate reads: the application sees the body arrive in parts
        client.send(b"0\r\n\r\n")
        response = client.read_response()
    # the scope path is not normalised by the server (the application decides)
    assert response.status == 200
    assert response.header("Transfer-Encoding") == "chunked"  # more_body without Content-Length
    data = json.loads(response.body)
    received = data["received"]
    assert all(event["type"] == "http.request" for event in received)
    assert [event["more_body"] for event in received] == [True] * (len(received) - 1) + [False]
    assert sum(event["size"] for event in received) == 10
    assert len(received) >= 3
    scope = data["scope"]
    assert scope["method"] == "POST" and scope["path"] == "/events/../events"
    assert scope["query_string"] == "x=1&y=%20" and scope["http_version"] == "1.1"
    assert ["x-custom", "A"] in scope["headers"] and ["host", "t"] in scope["headers"]
    assert scope["client"][0] == "127.0.0.1"
    assert scope["state"] == {"started": "yes"}
    assert scope["asgi"]["version"] == "3.0"


def test_scope_client_and_scheme_come_from_a_trusted_proxy_only(serve):
    """--real-ip-header from a peer in --forwarded-allow-ips: the scope's
    client is the one it names (port 0, as uvicorn's proxy headers give it)
    and its X-Forwarded-Proto the scheme, as REMOTE_ADDR and
    wsgi.url_scheme are for WSGI; from another peer, both are ignored."""
    forwarded = [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "https")]
    trusting = serve(RAW_APP, "--real-ip-header", "X-Forwarded-For", "--forwarded-allow-ips", "127.0.0.1/32")
    seen = json.loads(trusting.request("GET", "/who", headers=forwarded).body)
    assert seen["client"] == ["203.0.113.7", 0] and seen["scheme"] == "https"
    assert seen["server"][0] == "127.0.0.1" and seen["server"][1] == trusting.port
    seen = json.loads(trusting.request("GET", "/who").body)  # nothing forwarded: the peer itself
    assert seen["client"][0] == "127.0.0.1" and seen["client"][1] > 0 and seen["scheme"] == "http"
    distrusting = serve(RAW_APP, "--real-ip-header", "X-Forwarded-For", "--forwarded-allow-ips", "10.0.0.0/8")
    seen = json.loads(distrusting.request("GET", "/who", headers=forwarded).body)
    assert seen["client"][0] == "127.0.0.1" and seen["scheme"] == "http"


def test_zerocopysend_parts_of_an_open_file_with_their_framing(serve):
    server = serve(RAW_APP, files={"data.txt": "file contents\n"})
    with server.connect() as client:
        client.send(request_bytes("GET", "/zerocopy"))
        whole = client.read_response()
        assert whole.status == 200 and whole.body == b"contents\n"
        assert whole.header("Content-Length") == "9"  # one event: its length is known
        client.send(request_bytes("GET", "/zerocopy-parts"))
        parts = client.read_response()
        # offset 9 count 4, the body, then from the untouched position 0: 4 bytes, then 2 more
        assert parts.status == 200 and parts.body == b"ents|file c"
        assert parts.header("Transfer-Encoding") == "chunked"
        client.send(request_bytes("HEAD", "/zerocopy"))
        head = client.read_response("HEAD")
        assert head.status == 200 and head.body == b"" and head.header("Content-Length") == "9"
        client.send(request_bytes("GET", "/scope-extensions"))
        assert "http.response.zerocopysend" in json.loads(client.read_response().body)


def test_raw_framing_keepalive_pipelining_head_204_and_errors(serve):
    server = serve(RAW_APP, files={"data.txt": "file contents\n"})
    with server.connect() as client:
        client.send(request_bytes("GET", "/one") + request_bytes("GET", "/two"))
        first, second = client.read_response(), client.read_response()
        assert (first.body, second.body) == (b"hello /one", b"hello /two")
        assert first.header("Content-Length") == "10"
        client.send(request_bytes("HEAD", "/head"))
        head = client.read_response("HEAD")
        assert head.status == 200 and head.header("Content-Length") == "12" and head.body == b""
        client.send(request_bytes("GET", "/nocontent"))
        empty = client.read_response()
        assert empty.status == 204 and empty.header("Content-Length") is None and empty.body == b""
        client.send(request_bytes("GET", "/file"))
        sent_file = client.read_response()
        assert sent_file.body == b"file contents\n" and sent_file.header("Content-Length") == "14"
        client.send(request_bytes("GET", "/raise"))
        failed = client.read_response()
        assert failed.status == 500 and b"Traceback" not in failed.body
        client.send(request_bytes("GET", "/after"))
        assert client.read_response().body == b"hello /after"  # the worker goes on
    server.wait_for_stderr(r"RuntimeError: the application failed")
    with server.connect() as client:
        client.send(request_bytes("GET", "/old", version="HTTP/1.0"))
        old = client.read_response()
        assert old.body == b"hello /old"


def test_raw_disconnect_mid_stream_reaches_the_application(serve):
    server = serve(RAW_APP)
    client = server.connect()
    client.send(request_bytes("GET", "/forever"))
    assert client.read_head()[1] == 200
    client.close()
    marker = server.dir / "forever.txt"
    deadline = time.monotonic() + 10
    while (not marker.exists() or len(marker.read_text().splitlines()) < 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.read_text().splitlines() == ["send raised ClientDisconnected", "receive gave http.disconnect"]
    assert server.request("GET", "/still").body == b"hello /still"


def test_raw_disconnect_while_the_application_waits_without_responding(serve):
    server = serve(RAW_APP)
    client = server.connect()
    client.send(request_bytes("POST", "/longpoll", body=b"payload"))
    time.sleep(0.3)
    client.close()
    marker = server.dir / "longpoll.txt"
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.read_text() == "receive gave http.disconnect\n"
    assert server.request("GET", "/still").body == b"hello /still"


def test_raw_slow_reader_does_not_make_the_server_buffer(serve):
    server = serve(RAW_APP)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.sendall(request_bytes("GET", "/big"))
    sent = server.dir / "sent.txt"
    deadline = time.monotonic() + 5
    while not sent.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # the client reads nothing meanwhile
    accepted = int(sent.read_text())
    # send() waits once the output passes write_buffer_high: what it accepted
    # is the socket buffers plus one high-water mark, far from 64 MiB
    assert accepted < 16 << 20, accepted
    total = 0
    while True:
        data = sock.recv(1 << 20)
        if not data:
            break
        total += len(data)
        if total >= (64 << 20):
            break
    sock.close()
    assert total >= 64 << 20
    # the application notes its last send() once it returns: a moment after
    # the client has the bytes
    deadline = time.monotonic() + 5
    while int(sent.read_text()) != 64 << 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert int(sent.read_text()) == 64 << 20


LIFESPAN_FAILS = '''
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "the database is unreachable"})
        return
'''

LIFESPAN_UNSUPPORTED = '''
async def app(scope, receive, send):
    if scope["type"] != "http":
        raise ValueError("only http here, as Django says")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"no lifespan needed"})
'''


def test_lifespan_failed_startup_stops_the_server(tmp_path):
    (tmp_path / "app.py").write_text(LIFESPAN_FAILS)
    done = subprocess.run([sys.executable, "-m", "fastcore", "serve", "app:app", "--bind", "127.0.0.1:0"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=30, start_new_session=True)
    assert done.returncode != 0
    assert "fastcore: error:" in done.stderr and "the database is unreachable" in done.stderr
    assert "Traceback" not in done.stderr


def test_lifespan_unsupported_runs_without_it_and_on_refuses(serve, tmp_path):
    server = serve(LIFESPAN_UNSUPPORTED)
    assert server.request("GET", "/").body == b"no lifespan needed"
    server.wait_for_stderr(r"does not support lifespan")
    (tmp_path / "strict").mkdir()
    (tmp_path / "strict" / "app.py").write_text(LIFESPAN_UNSUPPORTED)
    done = subprocess.run([sys.executable, "-m", "fastcore", "serve", "app:app", "--bind", "127.0.0.1:0",
                           "--lifespan", "on"], cwd=tmp_path / "strict", capture_output=True, text=True,
                          timeout=30, start_new_session=True)
    assert done.returncode != 0 and "lifespan on" in done.stderr


TASK_FACTORY_APP = '''
import asyncio

made = []


def factory(loop, coro, **kwargs):
    task = asyncio.Task(coro, loop=loop, **kwargs)
    made.append(task)
    return task


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        asyncio.get_running_loop().set_task_factory(factory)
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    mine = asyncio.current_task() in made
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"factory task: %d" % mine})
'''


def test_a_task_factory_the_application_installs_makes_the_request_tasks(serve):
    """The server makes each request's task itself only while no task factory
    is set (a quicker path than loop.create_task); an application's factory
    (tracing, eager tasks) is honoured for every request, under both loops."""
    for loop in ("asyncio", "uvloop"):
        server = serve(TASK_FACTORY_APP, "--asyncio-loop", loop)
        assert [server.request("GET", "/").body for _ in range(3)] == [b"factory task: 1"] * 3, loop


ASGI2_APP = '''
class app:
    def __init__(self, scope):
        self.scope = scope

    async def __call__(self, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"asgi2 " + self.scope["path"].encode()})
'''


def test_asgi2_double_callable_and_interface_override(serve):
    server = serve(ASGI2_APP, "--lifespan", "off")
    assert server.request("GET", "/x").body == b"asgi2 /x"


def test_graceful_stop_finishes_a_request_in_flight(serve):
    server = serve('''
import asyncio
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await asyncio.sleep(1.0)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"finished"})
''', "--lifespan", "off")
    with server.connect() as client:
        client.send(request_bytes("GET", "/slow"))
        time.sleep(0.3)
        server.proc.send_signal(15)
        response = client.read_response()
    assert response.body == b"finished"
    assert server.stop() == 0


def test_static_files_in_front_of_an_asgi_application(serve, tmp_path):
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "style.css").write_text("body {}\n")
    server = serve(RAW_APP, "--static", f"/assets={tmp_path / 'assets'}")
    assert server.request("GET", "/assets/style.css").body == b"body {}\n"
    assert server.request("GET", "/assets/none.txt").status == 404
    assert server.request("GET", "/app").body == b"hello /app"


@pytest.mark.parametrize("interface", ["wsgi"])
def test_interface_wsgi_forced_on_an_asgi_app_is_a_wsgi_call(serve, interface):
    # forced to WSGI, the coroutine function is called as WSGI: a 500, the worker keeps serving
    server = serve(LIFESPAN_UNSUPPORTED, "--interface", interface)
    assert server.request("GET", "/").status == 500


DJANGO_ASGI_APP = '''
import asyncio
from django.conf import settings

settings.configure(DEBUG=False, ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"], SECRET_KEY="test",
                   MIDDLEWARE=["django.middleware.common.CommonMiddleware"])

from django.core.asgi import get_asgi_application
from django.http import HttpResponse, JsonResponse
from django.urls import path


async def hello(request, name):
    await asyncio.sleep(0.01)
    return JsonResponse({"hello": name, "q": request.GET.get("q"), "async": True})


async def echo(request):
    return HttpResponse(request.body[::-1], content_type="application/octet-stream")


urlpatterns = [path("hello/<str:name>", hello), path("echo", echo)]
app = get_asgi_application()
'''


def test_django_asgi_handler_with_an_async_view(serve):
    # Django's handler refuses the lifespan scope: served without it (lifespan auto)
    server = serve(DJANGO_ASGI_APP)
    with requests.Session() as session:
        response = session.get(f"{server.url}/hello/world?q=1", timeout=10)
        assert response.json() == {"hello": "world", "q": "1", "async": True}
        posted = session.post(f"{server.url}/echo", data=b"123456", headers={"Content-Type": "text/plain"},
                              timeout=10)
        assert posted.content == b"654321"
        assert session.get(f"{server.url}/missing", timeout=10).status_code == 404
    server.wait_for_stderr(r"does not support lifespan")


def test_access_log_has_asgi_requests(serve):
    server = serve(RAW_APP, "--access-log", "access.log")
    assert server.request("GET", "/logged?x=1", headers=[("User-Agent", "tester/1")]).status == 200
    assert server.stop() == 0
    lines = (server.dir / "access.log").read_text().splitlines()
    assert any('"GET /logged?x=1 HTTP/1.1" 200 13' in line and '"tester/1"' in line for line in lines), lines


def test_uvloop_when_chosen_and_signals_still_stop_the_worker(serve):
    pytest.importorskip("uvloop")  # an optional loop: tested where it is installed
    server = serve(FASTAPI_APP, "--asyncio-loop", "uvloop")
    assert requests.get(f"{server.url}/state", timeout=10).json()["loop"].startswith("uvloop")
    assert requests.get(f"{server.url}/items/7", timeout=10).json() == {"item_id": 7, "q": "none"}
    assert server.stop() == 0 and not server.killed  # TERM reached the worker through uvloop


RELOAD_APP = '''
import asyncio
VERSION = b"v1"

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["path"] == "/slow":
        await asyncio.sleep(1.0)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": VERSION})
'''


def test_reload_finishes_a_request_in_flight_and_serves_new_code(serve):
    server = serve(RELOAD_APP, "--workers", "2")
    with server.connect() as slow:
        slow.send(request_bytes("GET", "/slow"))
        time.sleep(0.2)
        (server.dir / "app.py").write_text(RELOAD_APP.replace('b"v1"', 'b"v2"'))
        server.proc.send_signal(1)  # SIGHUP
        server.wait_for_stderr(r"reload done", timeout=10.0)
        # the old worker finished its request in flight
        assert slow.read_response().body == b"v1"
    assert server.request("GET", "/").body == b"v2"


EXTENSIONS_APP = '''
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    assert {"http.response.trailers", "http.response.early_hint"} <= set(scope["extensions"])
    if scope["path"] == "/trailers":
        await send({"type": "http.response.start", "status": 200, "trailers": True,
                    "headers": [(b"content-type", b"text/plain"), (b"trailer", b"x-checksum")]})
        await send({"type": "http.response.body", "body": b"part one, ", "more_body": True})
        await send({"type": "http.response.body", "body": b"part two"})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc123")], "more_trailers": True})
        await send({"type": "http.response.trailers", "headers": [(b"x-rows", b"2"), (b"content-length", b"5")]})
    elif scope["path"] == "/hints":
        await send({"type": "http.response.early_hint",
                    "links": [b"</style.css>; rel=preload; as=style", b"</app.js>; rel=preload; as=script"]})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"page"})
'''


def read_raw_response(server, request):
    """The bytes of one response whose chunked body ends the reading (trailers included)."""
    with server.connect() as client:
        client.send(request)
        client.sock.settimeout(5)
        raw = b""
        while raw.count(b"\r\n\r\n") < 2:
            data = client.sock.recv(65536)
            assert data, raw
            raw += data
    return raw.split(b"\r\n\r\n", 1)


def test_trailers_after_a_chunked_body_when_the_client_accepts_them(serve):
    server = serve(EXTENSIONS_APP, "--lifespan", "off")
    head, body = read_raw_response(server, request_bytes("GET", "/trailers", [("TE", "trailers")]))
    assert b"Transfer-Encoding: chunked" in head and b"Content-Length" not in head
    assert body.endswith(b"8\r\npart two\r\n0\r\nx-checksum: abc123\r\nx-rows: 2\r\n\r\n")  # no content-length
    # without TE: trailers, the same response ends with the plain last chunk
    head, body = read_raw_response(server, request_bytes("GET", "/trailers"))
    assert body.endswith(b"8\r\npart two\r\n0\r\n\r\n")


def test_early_hint_is_a_103_before_the_response(serve):
    server = serve(EXTENSIONS_APP, "--lifespan", "off")
    with server.connect() as client:
        client.send(request_bytes("GET", "/hints"))
        interim = client.read_response()
        final = client.read_response()
    assert interim.status == 103
    assert interim.header_all("link") == ["</style.css>; rel=preload; as=style", "</app.js>; rel=preload; as=script"]
    assert (final.status, final.body) == (200, b"page")
    # HTTP/1.0 has no interim responses: the response alone
    with server.connect() as client:
        client.send(request_bytes("GET", "/hints", version="HTTP/1.0"))
        response = client.read_response()
    assert (response.status, response.body) == (200, b"page")


def test_asgi_requests_count_under_their_own_route_in_metrics(serve):
    server = serve(EXTENSIONS_APP, "--lifespan", "off", "--admin", "127.0.0.1:0")
    admin_port = int(server.wait_for_stderr(r"admin on http://127\.0\.0\.1:(\d+)").group(1))
    for _ in range(3):
        assert server.request("GET", "/hints").status in (103, 200)
    metrics = requests.get(f"http://127.0.0.1:{admin_port}/metrics", timeout=5).text
    assert 'fastcore_requests_by_route_total{route="asgi"} 3' in metrics, metrics
    assert 'fastcore_requests_by_route_total{route="wsgi"} 0' in metrics
