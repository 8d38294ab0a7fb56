"""The Python side of the ASGI gateway: which interface an application
speaks, the asyncio loop of an ASGI worker, and the lifespan protocol.

The per-request part (scope, receive, send, framing) is Cython, in
fastcore._core.asgi; WebSocket scopes in fastcore._core.websocket (frames
in src_c/fc_ws.c).

Why asyncio drives and the core loop is watched
-----------------------------------------------
An ASGI worker needs a real asyncio event loop: database drivers, anyio
(Starlette's thread pool for sync views) and `asyncio.create_task` all
expect `asyncio.get_running_loop()` to be one. Two designs were possible:
the core loop offering asyncio's loop interface (as uvloop does), or
asyncio (or uvloop, when installed and chosen) running and watching the
core loop's epoll descriptor. The second is taken:

- asyncio's loop interface is large (sockets, subprocesses, signals,
  executors, TLS) and its private parts are what frameworks end up
  relying on; reimplementing it is a project of its own, where watching one
  descriptor is a few lines and keeps every asyncio feature exact.
- The compiled core still does all the socket work (accept, read, parse,
  write, timeouts, static files, the proxy): asyncio only sees one
  descriptor. An epoll descriptor is readable while any descriptor
  registered in it is ready, so asyncio wakes for the core's events and
  runs one core iteration that does not wait (`Loop.poll()`); the core's
  own deadlines (timeouts, call_later, the heartbeat: at most a second
  apart) come back as one asyncio timer, moved only when it must fire
  earlier. That watcher (CoreDriver) is Cython, in fastcore._core.asgi: it
  runs once per wake-up, and as a Python method it cost about 1,150
  instructions more a turn.
- The cost is a second epoll_wait per wake-up, a few microseconds; in
  exchange the WSGI worker is untouched (it still runs the core loop alone).

Signals: the core loop's signal pipe is one of its descriptors, so signals
reach the worker's handlers as they do in a WSGI worker.
"""
import asyncio
import logging

from fastcore._core.asgi import AsgiGateway, ClientDisconnected, CoreDriver  # noqa: F401
from fastcore.appload import as_asgi3

error_log = logging.getLogger("fastcore.error")

class LifespanError(Exception):
    """The application's startup failed; the message is one line."""


def new_event_loop(choice="auto"):
    """asyncio's loop, or uvloop's (choice uvloop, or auto when it is installed)."""
    if choice in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class Lifespan:
    """The lifespan scope (startup, shutdown) of one application.

    mode "auto": an application that raises before answering startup (one
    without lifespan support, as Django's handler) runs without it, as
    uvicorn's auto does; "on": that is an error; "off": never run."""

    def __init__(self, app, mode, timeout):
        self.app = app
        self.mode = mode
        self.timeout = timeout
        self.state = {}
        self.supported = False
        self.to_app = asyncio.Queue()
        self.from_app = asyncio.Queue()
        self.task = None

    async def receive(self):
        return await self.to_app.get()

    async def send(self, message):
        await self.from_app.put(message)

    async def run_app(self):
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}
        try:
            await self.app(scope, self.receive, self.send)
        except BaseException as error:
            await self.from_app.put({"type": "fastcore.lifespan.raised", "error": error})
            if not isinstance(error, Exception):
                raise
        else:
            await self.from_app.put({"type": "fastcore.lifespan.returned"})

    async def startup(self):
        """Runs startup; raises LifespanError when it fails. Returns the state
        to share into every scope, or None without lifespan."""
        if self.mode == "off":
            return None
        self.task = asyncio.ensure_future(self.run_app())
        await self.to_app.put({"type": "lifespan.startup"})
        try:
            message = await asyncio.wait_for(self.from_app.get(), self.timeout)
        except asyncio.TimeoutError:
            raise LifespanError(f"the application's lifespan startup did not complete within {self.timeout} s "
                                f"(lifespan_timeout)") from None
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            self.supported = True
            return self.state
        if kind == "lifespan.startup.failed":
            raise LifespanError(f"the application's startup failed: {message.get('message') or 'no message'}")
        if kind == "fastcore.lifespan.raised":
            error = message["error"]
            if self.mode == "auto":
                error_log.info("the application does not support lifespan (%s: %s): running without it",
                               type(error).__name__, error)
                return None
            raise LifespanError(f"lifespan on: the application raised {type(error).__name__} in its lifespan "
                                f"startup: {error}")
        if kind == "fastcore.lifespan.returned":
            if self.mode == "auto":
                error_log.info("the application returned from its lifespan scope without startup: running "
                               "without lifespan")
                return None
            raise LifespanError("lifespan on: the application returned from its lifespan scope without startup")
        raise LifespanError(f"the application sent {kind!r} instead of lifespan.startup.complete")

    async def shutdown(self):
        """Runs shutdown (when startup completed); failures are logged."""
        if not self.supported:
            return
        await self.to_app.put({"type": "lifespan.shutdown"})
        try:
            message = await asyncio.wait_for(self.from_app.get(), self.timeout)
        except asyncio.TimeoutError:
            error_log.error("the application's lifespan shutdown did not complete within %s s (lifespan_timeout)",
                            self.timeout)
            self.task.cancel()
            return
        kind = message["type"]
        if kind == "lifespan.shutdown.failed":
            error_log.error("the application's shutdown failed: %s", message.get("message") or "no message")
        elif kind == "fastcore.lifespan.raised":
            error = message["error"]
            error_log.error("the application raised in its lifespan shutdown", exc_info=(
                type(error), error, error.__traceback__))
        elif kind != "lifespan.shutdown.complete":
            error_log.error("the application sent %r instead of lifespan.shutdown.complete", kind)


class AsgiWorker:
    """One worker's asyncio loop, its gateway and the application's lifespan."""

    def __init__(self, app, config, core_loop):
        self.app = as_asgi3(app)
        self.config = config
        self.core = core_loop
        self.aio = new_event_loop(config.asyncio_loop)
        asyncio.set_event_loop(self.aio)
        self.gateway = AsgiGateway(self.app, config, core_loop, self.aio)
        self.lifespan = Lifespan(self.app, config.lifespan, config.lifespan_timeout)

    def start(self):
        """Runs the lifespan startup; raises LifespanError when it fails."""
        self.gateway.state = self.aio.run_until_complete(self.lifespan.startup())

    def run(self):
        """Serves until the core loop stops, then ends the tasks left."""
        driver = CoreDriver(self.core, self.aio)
        driver.start()
        self.aio.run_until_complete(driver.stopped)

    def close(self):
        """After the server closed its connections (their tasks were told
        http.disconnect): cancels what still runs, runs the shutdown."""
        aio = self.aio
        tasks = [task for task in self.gateway.tasks if not task.done()]
        if tasks:
            aio.run_until_complete(asyncio.wait(tasks, timeout=1.0))
            for task in tasks:
                task.cancel()
            aio.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        try:
            aio.run_until_complete(self.lifespan.shutdown())
            aio.run_until_complete(aio.shutdown_asyncgens())
            aio.run_until_complete(aio.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            aio.close()


__all__ = ["AsgiWorker", "CoreDriver", "Lifespan", "LifespanError", "new_event_loop"]
