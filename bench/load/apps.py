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
