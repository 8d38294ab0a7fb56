"""The Python side of the WSGI gateway (PEP 3333).

The hot part (environ, start_response, framing, writing) is Cython, in
fastcore._core.gateway. Here: the environ constants of a listener,
wsgi.errors, and the thread pool that runs the application when
threads > 1 while the loop keeps serving.

Threads: an application thread calls the app and pulls its iterable; every
chunk crosses to the loop thread with call_soon_threadsafe (an eventfd
wakes the loop), and the thread waits until the loop has queued it and the
connection's output is below the high-water mark, so a slow client slows
the producer instead of filling memory.
"""
import logging
import queue
import sys
import threading
import time

from fastcore import __version__
from fastcore._core.gateway import EMPTY_INPUT, FileWrapper, Gateway  # noqa: F401

error_log = logging.getLogger("fastcore.error")


class ErrorStream:
    """wsgi.errors: lines written by the application go to the error log."""

    def __init__(self, logger=error_log):
        self._logger = logger
        self._lock = threading.Lock()
        self._partial = ""

    def write(self, text):
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        with self._lock:
            text = self._partial + text
            *lines, self._partial = text.split("\n")
        for line in lines:
            self._logger.error("%s", line)
        return len(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        with self._lock:
            partial, self._partial = self._partial, ""
        if partial:
            self._logger.error("%s", partial)


def listener_environ(config, host, port, multiprocess=False, scheme="http"):
    """The WSGI keys that are the same for every request on one listener
    (scheme "https" on a TLS listener)."""
    return {
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.multithread": config.threads == "auto" or config.threads > 1,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
        "wsgi.errors": ErrorStream(),
        "wsgi.file_wrapper": FileWrapper,
        "wsgi.input_terminated": True,
        "wsgi.input": EMPTY_INPUT,
        "SERVER_SOFTWARE": f"fastcore/{__version__}",
        "SERVER_NAME": host,
        "SERVER_PORT": str(port),
        "SCRIPT_NAME": config.root_path,
    }


class _Flow:
    """Hand-over state of one exchange between its thread and the loop.
    `handed` (written by the thread only) and `taken` (by the loop only)
    count the body bytes on their way: their difference is what the thread
    has handed over that the loop has not queued yet."""

    __slots__ = ("go", "cancelled", "handed", "taken")

    def __init__(self):
        self.go = threading.Event()
        self.cancelled = False
        self.handed = 0
        self.taken = 0


class AppThreads:
    """Up to `count` threads that run the application while the loop keeps
    serving. Threads start as jobs need them. While every thread has a job
    the worker is full: `on_full(True)` (the server stops accepting, so new
    connections go to a worker that can serve them), `on_full(False)` once a
    thread is free again. `on_start()` runs when the first thread starts."""

    def __init__(self, loop, count, on_full=None, on_start=None, high_water=64 * 1024):
        self.loop = loop
        self.count = count
        self.high_water = high_water    # write_buffer_high: a thread past it waits for the client
        self.jobs = queue.SimpleQueue()
        self.flows = {}              # exchange -> _Flow, for every job submitted and not done
        self.running = {}            # thread name -> monotonic start of the job it runs
        self.threads = []
        self.full = False
        self.on_full = on_full
        self.on_start = on_start

    def oldest_job_start(self):
        """Monotonic start time of the longest-running job, or None."""
        starts = list(self.running.values())
        return min(starts) if starts else None

    def stop(self):
        for _ in self.threads:
            self.jobs.put(None)
        for thread in self.threads:
            thread.join(timeout=1)

    def _start_thread(self):
        thread = threading.Thread(target=self._work, name=f"fastcore-app-{len(self.threads)}", daemon=True)
        self.threads.append(thread)
        thread.start()
        if len(self.threads) == 1 and self.on_start is not None:
            self.on_start()

    def waiting(self):
        """Jobs submitted that no thread has taken yet."""
        return self.jobs.qsize()

    # loop thread
    def submit(self, gateway, exchange):
        self.flows[exchange] = _Flow()
        if len(self.flows) > len(self.threads) and len(self.threads) < self.count:
            self._start_thread()
        self.jobs.put((gateway, exchange))
        if not self.full and len(self.flows) >= self.count:
            self.full = True
            if self.on_full is not None:
                self.on_full(True)

    def _done(self, exchange):
        self.flows.pop(exchange, None)
        if self.full and len(self.flows) < self.count:
            self.full = False
            if self.on_full is not None:
                self.on_full(False)

    def resume(self, exchange):
        flow = self.flows.get(exchange)
        if flow is not None:
            flow.go.set()

    def cancel(self, exchange):
        flow = self.flows.get(exchange)
        if flow is not None:
            flow.cancelled = True
            flow.go.set()

    def _on_chunk(self, gateway, exchange, data, waiting):
        flow = self.flows.get(exchange)
        if flow is None:
            return
        flow.taken += len(data)
        if (gateway.start_chunk(exchange, data) or flow.cancelled) and waiting:
            flow.go.set()
        # else: the queue is full; on_writable -> resume() sets go

    def _on_done(self, gateway, exchange, error, seconds):
        self._done(exchange)
        gateway.complete(exchange, error, seconds)

    # application threads
    def deliver(self, gateway, exchange, data):
        """Hands one chunk to the loop. The thread goes on at once while what
        is on its way plus what the connection holds stays under the
        high-water mark (a one-chunk response costs no round trip); past
        it, it waits until the loop has queued the chunk and the
        connection can take more, so a slow client slows the producer."""
        flow = self.flows.get(exchange)
        if flow is None or flow.cancelled:
            raise ConnectionAbortedError("the client went away")
        size = len(data)
        waiting = flow.handed - flow.taken + size + gateway.queue_pending(exchange) >= self.high_water
        if waiting:
            flow.go.clear()
        flow.handed += size
        self.loop.call_soon_threadsafe(self._on_chunk, gateway, exchange, data, waiting)
        if waiting:
            flow.go.wait()
            if flow.cancelled:
                raise ConnectionAbortedError("the client went away")

    def _work(self):
        while True:
            job = self.jobs.get()
            if job is None:
                return
            gateway, exchange = job
            error = None
            me = threading.current_thread().name
            self.running[me] = started = time.monotonic()
            try:
                iterator = gateway.call_app(exchange)
                if iterator is not None:
                    flow = self.flows.get(exchange)
                    for chunk in iterator:
                        if flow is None or flow.cancelled:
                            break
                        if chunk:
                            self.deliver(gateway, exchange, chunk)
            except ConnectionAbortedError:
                pass
            except Exception:
                error = sys.exc_info()
            finally:
                self.running.pop(me, None)
            self.loop.call_soon_threadsafe(self._on_done, gateway, exchange, error, time.monotonic() - started)
