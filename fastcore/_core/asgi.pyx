# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The ASGI gateway (ASGI 3, HTTP spec 2.5): the RequestHandler that runs an
ASGI application as a task on the worker's asyncio loop.

Theory of operation
-------------------
The compiled core keeps the socket work: it reads, parses and writes; the
asyncio loop (fastcore.asgi) runs the application's tasks and watches the
core loop's epoll descriptor. Per request Python is entered once for the
scope (built here from the parser's spans, headers included, in one call)
and once per event (receive/send), never per header.

- on_head builds the scope and starts the application's task at once, so
  the application can stream the request body as it arrives.
- on_body queues body chunks for receive(). Backpressure: once what the
  application has not taken reaches write_buffer_high, the connection stops
  reading (pause_reading); receive() resumes it. A slow consumer therefore
  paces the client instead of filling memory.
- on_end marks the body complete; receive() then returns the last
  http.request (more_body False). After that, and once the response is
  complete, receive() waits for (or returns) http.disconnect.
- send(): http.response.start is kept until the first body event, so a
  one-event response goes out with its Content-Length in one write.
  Streaming (more_body) is chunked for HTTP/1.1 (close-delimited for 1.0)
  unless the application gave Content-Length; send() waits while the
  connection's output is above write_buffer_high (on_writable wakes it), so
  a slow reader slows the application instead of growing a buffer.
  http.response.pathsend and http.response.zerocopysend (parts of an open
  file, framed like body events) go out with sendfile. HEAD, 1xx, 204 and 304
  carry no body. The framing rules are the WSGI gateway's.
- on_close (the client went, or the server gave up on it) wakes receive()
  with http.disconnect; send() then raises ClientDisconnected (an OSError,
  as spec 2.4+ asks).
- A WebSocket handshake (an Upgrade: websocket field, noticed while the
  scope's headers are copied) is handed to the WebSocketHandler
  (websocket.pyx) at on_head, with the scope: the connection's handler
  becomes that one, and nothing of it runs for other requests.
- http.response.trailers (after a chunked body, for a client that sent
  TE: trailers) and http.response.early_hint (a 103) are the extensions
  the scope offers besides pathsend.
- A finished response is handed back with end_response() and written at
  once (flush_now): the core's deferred flush runs at the end of a core
  batch, and a task is not inside one.

Invariants: an exchange's task is started once; end_response() runs once
per exchange (complete); after on_close nothing is written.
"""
import asyncio
import logging
import os
import signal
import stat
import sys
from urllib.parse import unquote_to_bytes

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM
from libc.stdint cimport int64_t
from libc.math cimport INFINITY
from libc.string cimport memchr, memcmp

from fastcore._core.includes.fc_http cimport (
    FC_REQ_CHUNKED, FC_REQ_EXPECT_CONTINUE, FC_REQ_HAS_LENGTH, fc_header_t, fc_request_head_t, fc_request_info_t,
)
from fastcore._core.parser cimport RequestParser, ascii_only, is_head_request, method_str, text
from fastcore._core.connection cimport Connection, RequestHandler, S_APP, S_BODY, S_CLOSED, client_ready
from fastcore._core.includes.fc_realip cimport FC_PROTO_HTTPS
from fastcore._core.response cimport header_pair, reason
from fastcore._core.loop cimport Loop
from fastcore._core.websocket cimport WebSocketHandler
from fastcore._core.stats cimport WorkerStats
from fastcore._core.framing cimport AppResponse
from fastcore._core.includes.syscalls cimport EAGAIN, EINTR, MSG_DONTWAIT, MSG_PEEK, errno, recv

cdef object error_log = logging.getLogger("fastcore.error")
cdef object Task = asyncio.Task
cdef str TASK_NAME = "fastcore.request"

cdef bytes CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
cdef bytes ERROR_500 = (b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\n"
                        b"Content-Length: 22\r\n\r\nInternal Server Error\n")
cdef bytes EMPTY = b""
cdef dict ASGI_VERSION = {"version": "3.0", "spec_version": "2.5"}
# the extensions every http scope offers: a copy per scope (one dict; the
# per-extension settings, all empty, are shared)
cdef dict EXTENSIONS = {"http.response.pathsend": {}, "http.response.zerocopysend": {}, "http.response.trailers": {},
                        "http.response.early_hint": {}}


class ClientDisconnected(OSError):
    """send() after the client has gone (ASGI HTTP spec 2.4+: an OSError)."""


@cython.final
cdef class Done:
    """An awaitable that is done at once, with None: what send() returns for
    an event it has carried out. Stateless, so one object serves every
    await: `await DONE` calls __await__ (itself) and __next__, which ends
    the iteration at once."""

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        raise StopIteration


cdef Done DONE = Done()


# ---- header names: the raw field name to its lower-case bytes ----------------
# Looked up by (length, first, last byte) and filled on a miss, like the
# WSGI gateway's environ keys: a request's usual dozen names cost no
# allocation but the value's.
cdef list name_slot_raw = [None] * 1024
cdef list name_slot_lower = [None] * 1024


cdef inline size_t name_slot(const char *at, size_t n) noexcept:
    return (n * 7 + <unsigned char>at[0] * 3 + <unsigned char>at[n - 1] * 5) & 1023


cdef bytes lower_name(const char *at, size_t n):
    cdef size_t slot = name_slot(at, n)
    cdef object cached = <object>PyList_GET_ITEM(name_slot_raw, slot)
    cdef bytes raw
    if cached is not None:
        raw = <bytes>cached
        if <size_t>PyBytes_GET_SIZE(raw) == n and memcmp(PyBytes_AS_STRING(raw), at, n) == 0:
            return <bytes><object>PyList_GET_ITEM(name_slot_lower, slot)
    raw = PyBytes_FromStringAndSize(at, n)
    lowered = raw.lower()
    name_slot_raw[slot] = raw
    name_slot_lower[slot] = lowered
    return lowered


# ---- response head validation -----------------------------------------------

cdef frozenset HOP_BY_HOP = frozenset([b"connection", b"keep-alive", b"transfer-encoding", b"upgrade",
                                       b"proxy-connection", b"te", b"trailer"])

cdef enum HeaderKind:
    H_PLAIN = 0          # sent as given
    H_LENGTH = 1         # Content-Length: the server frames with it
    H_CONNECTION = 2     # Connection: read for "close", not forwarded
    H_HOP = 3            # other hop-by-hop fields: the server frames and manages the connection

# (name, value) pairs an application sends on every response, checked and
# encoded once: (kind, line, Content-Length or -1, closes)
cdef dict header_cache = {}
cdef Py_ssize_t HEADER_CACHE_MAX = 4096
cdef dict status_cache = {}


cdef tuple check_header(object item):
    cached = header_cache.get(item) if type(item) is tuple else None
    if cached is not None:
        return <tuple>cached
    name, value = header_pair(item)
    lower = name.lower()
    length = -1
    closes = False
    if lower == b"content-length":
        if not value.isdigit():
            raise ValueError(f"invalid Content-Length {value!r} from the application")
        kind = H_LENGTH
        length = int(value)
    elif lower == b"connection":
        kind = H_CONNECTION
        closes = b"close" in value.lower()
    elif lower in HOP_BY_HOP:
        kind = H_HOP
    else:
        kind = H_PLAIN
    entry = (kind, name + b": " + value + b"\r\n", length, closes)
    if type(item) is tuple and len(header_cache) < HEADER_CACHE_MAX:
        header_cache[item] = entry
    return entry


cdef tuple check_status(object status, bint http11):
    key = (status, http11)
    cached = status_cache.get(key)
    if cached is not None:
        return <tuple>cached
    if type(status) is not int or not 100 <= status <= 999:
        raise ValueError(f"invalid status {status!r} from the application: expected an int from 100 to 999")
    entry = (status, (b"HTTP/1.1 " if http11 else b"HTTP/1.0 ") + b"%d %s\r\n" % (status, reason(status)))
    if len(status_cache) < 2048:
        status_cache[key] = entry
    return entry


cdef bytes body_bytes(object data):
    """The body of an http.response.body event as bytes (a bytearray or a
    memoryview copied); TypeError for anything else."""
    if type(data) is bytes:
        return <bytes>data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"http.response.body: body is a {type(data).__name__}, not bytes")


cdef inline object message_get(object message, str key, object default):
    """message.get(key, default), typed for the dict every framework sends: a
    method call on an untyped object costs a bound method each time."""
    if type(message) is dict:
        return (<dict>message).get(key, default)
    return message.get(key, default)


@cython.final
cdef class Exchange(AppResponse):
    """One request and its response, between the core and the application's
    task (the response's framing: AppResponse, framing.pyx)."""
    cdef readonly dict scope
    cdef AsgiGateway gateway
    cdef list chunks                 # body chunks the application has not taken yet
    cdef size_t buffered             # their size
    cdef bint body_done              # on_end has run: the body is complete
    cdef bint request_given          # the last http.request (more_body False) was returned
    cdef bint expect_continue        # the client waits for 100 Continue before its body
    cdef readonly bint disconnected  # on_close has run
    cdef object waiter               # future receive() waits on, or None
    cdef object drain_waiter         # future send() waits on while the output is above high water
    cdef object task                 # the application's task (in gateway.tasks while it runs)
    cdef readonly bint complete      # the response is whole (or cut): end_response ran
    cdef double began
    cdef str raw_target              # for the access log
    cdef bint websocket              # a WebSocket handshake: handed to the WebSocketHandler
    cdef bint trailers               # http.response.start said trailers: the body's end waits for them
    cdef bint trailers_out           # ... and they go out (chunked, the client sent TE: trailers)
    cdef bint body_ended             # the last body event came; the trailers are pending
    cdef list trailer_lines          # the trailers' encoded fields, once they came
    cdef int hangup_fd               # a duplicate of the socket asyncio watches for the client's end, or -1

    # -- the application's side (runs in its task) ------------------------------

    async def receive(self):
        cdef bytes body
        while True:
            if self.chunks:
                body = <bytes>self.chunks[0] if len(self.chunks) == 1 else EMPTY.join(self.chunks)
                self.chunks = []
                self.buffered = 0
                if not self.body_done and not self.disconnected:
                    self.conn.resume_reading()
                self.request_given = self.body_done
                return {"type": "http.request", "body": body, "more_body": not self.body_done}
            if self.disconnected or self.complete or (self.request_given and self.conn.state == S_CLOSED):
                return {"type": "http.disconnect"}
            if self.body_done and not self.request_given:
                self.request_given = True
                return {"type": "http.request", "body": EMPTY, "more_body": False}
            if self.expect_continue:
                self.expect_continue = False
                if not self.head_sent:
                    self.conn.send_interim(CONTINUE)
            if not self.body_done:
                self.conn.resume_reading()
            elif self.hangup_fd < 0:
                # only the disconnect is left to wait for, and the core does
                # not watch the socket while the application holds it
                self.watch_hangup()
            self.waiter = self.gateway.aio.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
                self.unwatch_hangup()

    def send(self, message):
        """The application's send(): does the event at once, and returns
        what to await: DONE (nothing to wait for: no coroutine is made per
        event), or drain() while the output is above write_buffer_high.
        Errors are raised here, at the application's `await send(...)`."""
        cdef str kind
        cdef object body
        cdef bint more
        if self.disconnected:
            raise ClientDisconnected("the client has disconnected")
        kind = message["type"]
        if kind == "http.response.body":
            if not self.started or self.complete or self.body_ended:
                raise RuntimeError("http.response.body " +
                                   ("before http.response.start" if not self.started else "after the response ended"))
            body = message_get(message, "body", EMPTY)
            more = message_get(message, "more_body", False)
            self.gateway.loop.now = self.gateway.loop.clock()
            if not more:
                if self.trailers:
                    self.end_body(body)
                    return DONE
                self.write_last(body)
                return DONE
            self.write_body(body)
            return self.drained()
        elif kind == "http.response.zerocopysend":
            if not self.started or self.complete or self.body_ended:
                raise RuntimeError("http.response.zerocopysend " +
                                   ("before http.response.start" if not self.started else "after the response ended"))
            more = message_get(message, "more_body", False)
            self.gateway.loop.now = self.gateway.loop.clock()
            self.send_file_part(message, more)
            if not more:
                if self.trailers:
                    self.body_ended = True
                    self.conn.flush()
                    return DONE
                self.finish()
                return DONE
            return self.drained()
        elif kind == "http.response.start":
            if self.started:
                raise RuntimeError("http.response.start sent twice")
            self.start(message["status"], message_get(message, "headers", ()))
            if message_get(message, "trailers", None):
                self.expect_trailers()
        elif kind == "http.response.pathsend":
            if not self.started or self.complete:
                raise RuntimeError("http.response.pathsend without http.response.start, or after the response")
            self.gateway.loop.now = self.gateway.loop.clock()
            self.send_path(message["path"])
        elif kind == "http.response.trailers":
            if not self.trailers or not self.body_ended or self.complete:
                raise RuntimeError("http.response.trailers without trailers announced in http.response.start, "
                                   "before the body ended, or after the response")
            self.add_trailers(message_get(message, "headers", ()))
            if not message_get(message, "more_trailers", False):
                self.gateway.loop.now = self.gateway.loop.clock()
                self.finish()
        elif kind == "http.response.early_hint":
            if self.started:
                raise RuntimeError("http.response.early_hint after http.response.start")
            self.early_hint(message_get(message, "links", ()))
        else:
            raise ValueError(f"unexpected ASGI message {kind!r} for an http scope")
        return DONE

    cdef object drained(self):
        """After a body event with more to come: writes what the socket
        takes now; drain() to await when the output stays above
        write_buffer_high (or the client is gone), else DONE."""
        self.conn.flush()
        if self.conn.out.pending >= self.gateway.high_water or self.disconnected:
            return self.drain()
        return DONE

    async def drain(self):
        """After a body event with more to come: writes what the socket
        takes, and waits while the output stays above write_buffer_high."""
        self.conn.flush()
        while self.conn.out.pending >= self.gateway.high_water and not self.disconnected:
            self.drain_waiter = self.gateway.aio.create_future()
            self.conn.wait_writable()
            try:
                await self.drain_waiter
            finally:
                self.drain_waiter = None
        if self.disconnected:
            raise ClientDisconnected("the client has disconnected")

    async def run(self, app):
        """The application's task: runs it and settles what it left undone."""
        try:
            try:
                await app(self.scope, self.receive, self.send)
            except Exception as error:
                if self.disconnected and isinstance(error, OSError):
                    return  # ClientDisconnected, passed through by the application
                self.fail(error)
                return
            except BaseException:
                # cancelled (the worker stops) or interrupted: not ours to swallow or log
                if not self.complete and not self.disconnected and self.conn.fd >= 0:
                    self.cut()
                raise
            if not self.complete and not self.disconnected:
                if not self.started:
                    error_log.error("the application returned without sending a response for %s %s",
                                    self.scope["method"], self.raw_target)
                    self.fail(None)
                else:
                    error_log.error("the application returned before its response ended for %s %s: "
                                    "closing the connection", self.scope["method"], self.raw_target)
                    self.cut()
        finally:
            # out of the running set as it ends (a done callback would cost the
            # loop one more turn per request)
            self.gateway.tasks.discard(self.task)
            self.task = None

    # -- the response ------------------------------------------------------------

    cdef int start(self, object status, object headers) except -1:
        cdef tuple checked = check_status(status, self.http11)
        cdef tuple entry
        cdef int kind
        cdef list lines = []
        self.keep_alive = self.conn.may_keep_alive()
        self.declared = -1
        for item in headers:
            entry = check_header(item)
            kind = entry[0]
            if kind == H_PLAIN:
                lines.append(entry[1])
            elif kind == H_LENGTH:
                self.declared = entry[2]
                self.length_line = entry[1]
            elif kind == H_CONNECTION:
                if entry[3]:
                    self.keep_alive = False
        self.status = checked[0]
        self.status_line = checked[1]
        self.header_lines = lines
        self.started = True
        self.no_body = self.is_head or self.status < 200 or self.status == 204 or self.status == 304
        return 0

    cdef int send_head(self, int64_t length) except -1:
        """The response head; length is the body's when known, -1 if not."""
        if not self.body_done:
            # the response ends before the request body was read: the
            # unread rest would be taken for the next request
            self.keep_alive = False
        return AppResponse.send_head(self, -1 if self.trailers_out else length)

    cdef int write_body(self, object data) except -1:
        data = body_bytes(data)
        if not self.head_sent:
            self.send_head(-1)
        return self.write_bytes(<bytes>data)

    cdef int write_last(self, object body) except -1:
        body = body_bytes(body)
        if not self.head_sent:
            self.send_head(PyBytes_GET_SIZE(body))  # the whole response in one event: its length is known
        self.write_bytes(<bytes>body)
        self.finish()
        return 0

    cdef int finish(self) except -1:
        cdef bint keep = self.end_framing(self.trailer_lines)
        self.complete = True
        self.account(self.status)
        self.conn.end_response(keep and self.keep_alive)
        self.gateway.flush_now()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)  # a receive() waiting for the disconnect: the response is over
        return 0

    cdef str request_text(self):
        return f"{self.scope['method']} {self.raw_target}"

    # -- trailers and early hints (extensions) ------------------------------------

    cdef int expect_trailers(self) except -1:
        """http.response.start with trailers: they go out after a chunked body
        when the client said TE: trailers (RFC 9110 6.5.1); else the body is
        framed as usual and the trailers are dropped."""
        self.trailers = True
        if not self.http11 or self.declared >= 0 or self.no_body:
            return 0
        for name, value in self.scope["headers"]:
            if name == b"te" and b"trailers" in [token.strip().split(b";")[0] for token in value.lower().split(b",")]:
                self.trailers_out = True
                break
        return 0

    cdef int end_body(self, object body) except -1:
        """The last body event of a response with trailers: the body ends,
        the response waits for http.response.trailers."""
        body = body_bytes(body)
        if not self.head_sent:
            self.send_head(PyBytes_GET_SIZE(body))
        self.write_bytes(<bytes>body)
        self.body_ended = True
        self.conn.flush()
        return 0

    cdef int add_trailers(self, object headers) except -1:
        cdef tuple entry
        if self.trailer_lines is None:
            self.trailer_lines = []
        for item in headers:
            entry = check_header(item)
            if entry[0] == H_PLAIN and self.trailers_out:
                self.trailer_lines.append(entry[1])  # framing fields have no place in trailers (RFC 9110 6.5.1)
        return 0

    cdef int early_hint(self, object links) except -1:
        """http.response.early_hint: a 103 with a Link field per link
        (RFC 8297), to HTTP/1.1 clients only (1.0 has no interim responses)."""
        cdef list parts = [b"HTTP/1.1 103 Early Hints\r\n"]
        for link in links:
            if type(link) is not bytes or b"\n" in link or b"\r" in link or b"\0" in link:
                raise ValueError(f"http.response.early_hint: link {link!r} is not bytes without CR, LF or NUL")
            parts.append(b"Link: " + link + b"\r\n")
        if self.http11 and len(parts) > 1 and not self.disconnected:
            parts.append(b"\r\n")
            self.conn.send_interim(EMPTY.join(parts))
        return 0

    cdef int send_path(self, object path) except -1:
        """http.response.pathsend: the file goes out with sendfile."""
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ValueError(f"http.response.pathsend: {path!r} is not a regular file")
            self.send_whole_file(fd, 0, info.st_size)
        finally:
            os.close(fd)  # the segment holds its own duplicate
        self.finish()
        return 0

    cdef int send_file_part(self, object message, bint more) except -1:
        """http.response.zerocopysend: `count` bytes (all to the end when
        absent) of the open file `file` (an object with fileno(), or a
        descriptor) from `offset` (its current position when absent, which
        then moves past them) go out with sendfile, framed as a body part."""
        cdef int64_t offset, n
        file = message["file"]
        fd = file if type(file) is int else file.fileno()
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"http.response.zerocopysend: {file!r} is not a regular file")
        given = message_get(message, "offset", None)
        offset = os.lseek(fd, 0, os.SEEK_CUR) if given is None else given
        count = message_get(message, "count", None)
        if offset < 0 or (count is not None and count < 0):
            raise ValueError(f"http.response.zerocopysend: negative offset or count ({offset}, {count})")
        n = max(info.st_size - offset, 0)
        if count is not None and count < n:
            n = count
        if given is None:
            os.lseek(fd, offset + n, os.SEEK_SET)
        if not self.head_sent:
            # one event with the whole body: its length is known
            self.send_head(-1 if more else n)
        return self.write_file(fd, offset, n)

    cdef int fail(self, object error) except -1:
        """The application raised (error) or returned with no response (None):
        500 if nothing was sent yet, else the connection is cut."""
        if error is not None:
            error_log.error("error in the ASGI application for %s %s", self.scope["method"], self.raw_target,
                            exc_info=(type(error), error, error.__traceback__))
        if self.complete or self.disconnected:
            return 0
        if self.head_sent:
            self.cut()
            return 0
        self.head_sent = True
        self.head_bytes = len(ERROR_500)
        self.sent = 0
        self.no_body = True
        self.complete = True
        self.account(500)
        self.conn.send(ERROR_500)
        self.conn.end_response(self.body_done)
        self.gateway.flush_now()
        return 0

    cdef int cut(self) except -1:
        """A response that cannot be completed: the client sees it truncated."""
        self.complete = True
        self.account(self.status)
        self.conn.close()
        return 0

    cdef int account(self, int status) except -1:
        cdef Connection conn = self.conn
        cdef WorkerStats stats = conn.server.stats
        cdef double seconds = conn.loop.clock() - self.began
        cdef long long body = self.sent if not self.no_body else 0
        if stats is not None:
            stats.record_response(status, self.head_bytes + body, seconds)
            stats.s.route_asgi += 1
        log = self.gateway.access_log
        if log is not None:
            scope = self.scope
            fields = {}
            for name, value in scope["headers"]:
                if name in (b"user-agent", b"referer", b"x-request-id"):
                    fields.setdefault(name, value.decode("latin-1"))
            log.log(scope["client"][0] if scope["client"] else "", scope["method"], self.raw_target,
                    "HTTP/" + scope["http_version"], status, body, int(seconds * 1e6),
                    fields.get(b"user-agent", ""), fields.get(b"referer", ""),
                    fields.get(b"x-request-id") or self.gateway.new_request_id())
        return 0

    # -- a client's end while the application waits for it ----------------------

    cdef int watch_hangup(self) except -1:
        """asyncio watches a duplicate of the socket (the core's epoll keeps
        its own registration): readable with nothing to read is the client's
        end. Only for an application waiting on receive() after the body (a
        long poll): no cost on the usual path."""
        if self.conn.fd < 0:
            return 0
        self.hangup_fd = os.dup(self.conn.fd)
        self.gateway.aio.add_reader(self.hangup_fd, self.on_hangup_readable)
        return 0

    cdef int unwatch_hangup(self) except -1:
        if self.hangup_fd >= 0:
            self.gateway.aio.remove_reader(self.hangup_fd)
            os.close(self.hangup_fd)
            self.hangup_fd = -1
        return 0

    def on_hangup_readable(self):
        cdef char byte
        cdef ssize_t n = recv(self.hangup_fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT)
        if n < 0 and (errno == EAGAIN or errno == EINTR):
            return
        self.unwatch_hangup()  # bytes (a pipelined request: not an end) or the end: watched no more
        if n <= 0 and self.conn.exchange is self:
            self.conn.close()  # on_close: receive() gives http.disconnect

    # -- the core's side (loop callbacks) ---------------------------------------

    cdef int give(self, bytes chunk) except -1:
        self.chunks.append(chunk)
        self.buffered += PyBytes_GET_SIZE(chunk)
        if self.buffered >= self.gateway.high_water:
            self.conn.pause_reading()  # receive() resumes
        self.wake()
        return 0

    cdef int wake(self) except -1:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)
        return 0


@cython.final
cdef class CoreDriver:
    """Runs the core loop inside the asyncio loop (see fastcore.asgi): asyncio
    calls turn() when the core's epoll descriptor is readable, and at the
    core's next deadline (one asyncio timer, moved only when it must fire
    earlier)."""
    cdef Loop core
    cdef object aio
    cdef object timer
    cdef double timer_when
    cdef int wakeup_fd
    cdef readonly object stopped

    def __cinit__(self, Loop core, aio):
        self.core = core
        self.aio = aio
        self.timer = None
        self.timer_when = INFINITY
        self.stopped = aio.create_future()

    def start(self):
        self.core.start()
        self.aio.add_reader(self.core.fileno(), self.turn)
        # uvloop points the interpreter's signal wake-up at its own pipe when
        # it runs; the core's signal pipe (the worker's TERM, HUP...) gets it back
        self.wakeup_fd = signal.set_wakeup_fd(-1)
        if self.wakeup_fd >= 0:
            signal.set_wakeup_fd(self.wakeup_fd, warn_on_full_buffer=False)
            self.aio.call_soon(self.reclaim_signal_wakeup)
        self.turn()

    def reclaim_signal_wakeup(self):
        signal.set_wakeup_fd(self.wakeup_fd, warn_on_full_buffer=False)

    def turn(self):
        cdef double when
        if not self.core._poll():
            self.stop()
            return
        when = self.aio.time() + self.core._next_timeout()
        if when < self.timer_when - 0.0005:
            if self.timer is not None:
                self.timer.cancel()
            self.timer = self.aio.call_at(when, self.on_timer)
            self.timer_when = when

    def on_timer(self):
        self.timer = None
        self.timer_when = INFINITY
        self.turn()

    def stop(self):
        self.aio.remove_reader(self.core.fileno())
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not self.stopped.done():
            self.stopped.set_result(None)


cdef class AsgiGateway(RequestHandler):
    """Runs one ASGI 3 application for the connections of a worker."""
    cdef object app
    cdef readonly object aio             # the asyncio loop
    cdef object create_task
    cdef object get_task_factory
    cdef Loop loop
    cdef readonly object config
    cdef bint server_header
    cdef size_t high_water
    cdef str root_path
    cdef bytes root_path_bytes
    cdef public object state             # the lifespan state (None: no lifespan), copied into each scope
    cdef public object access_log
    cdef public object new_request_id
    cdef readonly set tasks              # the applications' running tasks
    cdef dict servers                    # listener -> the scopes' "server" tuple
    cdef readonly WebSocketHandler websockets  # the websocket scopes (websocket.pyx)

    def __cinit__(self, app, config, Loop loop, aio):
        self.app = app
        self.config = config
        self.loop = loop
        self.aio = aio
        self.create_task = aio.create_task
        self.get_task_factory = aio.get_task_factory
        self.server_header = config.server_header
        self.high_water = config.write_buffer_high
        self.root_path = config.root_path
        self.root_path_bytes = config.root_path.encode("utf-8")
        self.tasks = set()
        self.servers = {}
        self.websockets = WebSocketHandler(app, config, loop, aio, self, self.tasks, ClientDisconnected)

    def drain(self):
        """Graceful stop: open WebSockets are closed with 1001 (going away)."""
        self.websockets.go_away()

    @property
    def idle(self):
        """True when no WebSocket application runs (a handler's cleanup after
        its 1001 included); HTTP tasks are the connections' business."""
        return not self.websockets.running

    cdef int flush_now(self) except -1:
        """Writes the response just finished (Connection.end_response
        deferred its flush to the end of a core batch, which is not running:
        this is an asyncio task). Responses of different connections go out
        in their own writes either way; waiting for the end of the asyncio
        turn cost one more asyncio iteration per request (about a tenth of
        a hello world's instructions) for nothing."""
        self.loop.now = self.loop.clock()
        self.loop._run_deferred()
        return 0

    # -- RequestHandler ----------------------------------------------------------

    cdef tuple refused_request(self, Connection conn):
        ex = conn.exchange
        if not isinstance(ex, Exchange):
            return None
        scope = (<Exchange>ex).scope
        return scope["method"], (<Exchange>ex).raw_target, "HTTP/" + scope["http_version"]

    cdef int on_head(self, Connection conn) except -1:
        cdef Exchange ex = Exchange.__new__(Exchange)
        cdef RequestParser p = conn.parser
        ex.hangup_fd = -1
        ex.gateway = self
        ex.conn = conn
        ex.server_header = self.server_header
        ex.chunks = []
        ex.http11 = p.head.minor_version == 1
        ex.is_head = is_head_request(p)
        ex.began = conn.loop.clock()
        ex.scope = self.build_scope(conn, p, ex)
        ex.expect_continue = (p.info.flags & FC_REQ_EXPECT_CONTINUE) != 0 and (
            p.info.flags & FC_REQ_CHUNKED or (p.info.flags & FC_REQ_HAS_LENGTH and p.info.content_length))
        if ex.websocket:
            # the rest of this connection is the WebSocket handler's
            conn.handler = self.websockets
            return self.websockets.begin(conn, ex.scope, ex.raw_target)
        conn.exchange = ex
        if self.get_task_factory() is None:
            # what loop.create_task does then, less its wrapper and the task's
            # default name ("Task-N", formatted anew for each request): a
            # quarter of the cost of a task, 2,100 of a hello's 38,400
            # instructions under uvloop
            ex.task = Task(ex.run(self.app), loop=self.aio, name=TASK_NAME)
        else:
            ex.task = self.create_task(ex.run(self.app))
        self.tasks.add(ex.task)
        return 0

    cdef int on_body(self, Connection conn, const char *at, size_t n) except -1:
        cdef Exchange ex = <Exchange>conn.exchange
        if ex is None or ex.complete:
            return 0  # answered already: the rest of the body is dropped (the connection closes)
        ex.give(PyBytes_FromStringAndSize(at, n))
        return 0

    cdef int on_end(self, Connection conn) except -1:
        cdef Exchange ex = <Exchange>conn.exchange
        if ex is None:
            return 0
        ex.body_done = True
        ex.expect_continue = False
        ex.wake()
        return 0

    cdef int on_writable(self, Connection conn) except -1:
        cdef Exchange ex = <Exchange>conn.exchange
        if ex is not None and ex.drain_waiter is not None and not ex.drain_waiter.done():
            ex.drain_waiter.set_result(None)
        return 0

    cdef int on_close(self, Connection conn) except -1:
        cdef Exchange ex = <Exchange>conn.exchange
        if ex is None:
            return 0
        ex.disconnected = True
        ex.wake()
        if ex.drain_waiter is not None and not ex.drain_waiter.done():
            ex.drain_waiter.set_result(None)
        return 0

    # -- scope -------------------------------------------------------------------

    cdef dict build_scope(self, Connection conn, RequestParser p, Exchange ex):
        cdef fc_request_head_t *h = &p.head
        cdef fc_request_info_t *info = &p.info
        cdef fc_header_t *f
        cdef size_t i
        cdef bint ascii = ascii_only(h.method.at, <size_t>(p.buf + p.start - h.method.at))
        cdef bytes raw_path = PyBytes_FromStringAndSize(info.path.at, info.path.len)
        cdef str path
        cdef list headers = []
        cdef bytes name, value
        for i in range(h.num_headers):
            f = &p.fields[i]
            name = lower_name(f.name.at, f.name.len)
            value = PyBytes_FromStringAndSize(f.value.at, f.value.len)
            headers.append((name, value))
            if name == b"upgrade" and b"websocket" in value.lower():
                ex.websocket = True
        if ascii and memchr(info.path.at, c'%', info.path.len) == NULL:
            path = text(info.path.at, info.path.len, True)
        else:
            path = unquote_to_bytes(raw_path).decode("utf-8", "replace")
        if self.root_path and not (path == self.root_path or path.startswith(self.root_path + "/")):
            path = self.root_path + path  # the path includes root_path (ASGI, as uvicorn gives it)
        ex.raw_target = text(h.target.at, h.target.len, ascii)
        # the peer, or the client and scheme a trusted proxy named (realip.pyx),
        # as the WSGI environ has them (uvicorn's --proxy-headers: port 0)
        client_ready(conn)
        if conn.client_forwarded:
            client = (conn.client_text(), 0)
        else:
            client = conn.peer_client
            if client is None:
                if conn.peer_host_str is None:
                    conn._peer_strings()
                client = conn.peer_client = (conn.peer_host_str, int(conn.peer_port_str)) \
                    if conn.peer_port_str else None
        if conn.forwarded_proto:
            scheme = "https" if conn.forwarded_proto == FC_PROTO_HTTPS else "http"
        else:
            scheme = "http" if conn.tls == NULL else "https"
        server = self.servers.get(conn.listener)
        if server is None:
            environ = conn.listener.environ
            server = self.servers[conn.listener] = \
                (environ["SERVER_NAME"], int(environ["SERVER_PORT"])) if environ["SERVER_PORT"] else ()
        scope = {
            "type": "http",
            "asgi": ASGI_VERSION,
            "http_version": "1.1" if h.minor_version == 1 else "1.0",
            "method": method_str(h.method.at, h.method.len),
            "scheme": scheme,
            "path": path,
            "raw_path": raw_path,
            "query_string": PyBytes_FromStringAndSize(info.query.at, info.query.len) if info.query.len else EMPTY,
            "root_path": self.root_path,
            "headers": headers,
            "client": client,
            "server": server or None,
            "extensions": EXTENSIONS.copy(),
        }
        if conn.tls != NULL:
            scope["extensions"]["tls"] = conn.tls_scope()
        if self.state is not None:
            scope["state"] = self.state.copy()
        return scope
