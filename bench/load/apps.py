"""Applications served by every contender in the load benchmark."""
import time

BODY = b"Hello, World!"


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))])
    return [BODY]


def mixed(environ, start_response):
    """The hello world, but /slow first waits 100 ms (a database call)."""
    if environ["PATH_INFO"] == "/slow":
        time.sleep(0.1)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))])
    return [BODY]


async def asgi_hello(scope, receive, send):
    """The hello world as a raw ASGI application (no lifespan)."""
    if scope["type"] != "http":
        raise ValueError("http only")  # lifespan: run without it, as Django's handler is
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")]})
    await send({"type": "http.response.body", "body": BODY})


def _flask_app():
    from flask import Flask

    app = Flask("bench")

    @app.route("/")
    def index():
        return "Hello, World!"

    return app


flask_hello = _flask_app()


async def asgi_ws_echo(scope, receive, send):
    """A raw ASGI WebSocket echo (the hello world over HTTP, for the
    harness's readiness check; no lifespan)."""
    if scope["type"] == "http":
        return await asgi_hello(scope, receive, send)
    if scope["type"] != "websocket":
        raise ValueError("http and websocket only")
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": message.get("text"), "bytes": message.get("bytes")})


def _fastapi_app():
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    app = FastAPI()

    @app.get("/")
    async def index():
        return {"message": "Hello, World!"}

    @app.post("/echo")
    async def echo(request: Request):
        # parsed and encoded again, without jsonable_encoder's walk (which
        # costs more than the server: ~1 ms for this document)
        return JSONResponse(await request.json())

    return app


def __getattr__(name):
    # made when first asked for: importing FastAPI takes a while (under
    # callgrind, the cost gate's servers of this module would time out)
    if name == "fastapi_hello":  # GET / (the hello) and POST /echo (JSON echo)
        globals()[name] = app = _fastapi_app()
        return app
    raise AttributeError(name)
