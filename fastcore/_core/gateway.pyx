# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The WSGI gateway (PEP 3333): the RequestHandler that runs an application.

Theory of operation
-------------------
on_head builds `environ` straight from the parser's spans (no intermediate
Request object); on_body collects the body (in memory up to
body_buffer_size, then in a temporary file); on_end runs the application:

- threads == 1: inline, on the loop thread;
- threads > 1: on a thread pool (fastcore.wsgi.AppThreads); the response
  comes back to the loop thread through call_soon_threadsafe;
- threads == "auto": inline while calls are quick (a hello world costs a
  third of its threaded cost inline); a call that took auto_threads_after
  or longer is one that waited (a database, a service) and would have held
  every other connection of the worker meanwhile, so the calls go to the
  pool until auto_threads_hold passes without another slow one.

The response iterable is pulled only while the connection's output queue is
below its high-water mark; otherwise the exchange waits for the queue to
drain (Connection.producing), so a slow reader never makes the server hold
a whole response. The iterable's close() runs exactly once: at the end, on
an error, or when the connection dies first (on_close).

Framing: the application's Content-Length when it gives one (a body that
comes up short closes the connection); a one-element list gets its length
computed; otherwise chunked for HTTP/1.1 and close-delimited for HTTP/1.0.
HEAD, 1xx, 204 and 304 responses carry no body.
"""
import io
import itertools
import logging
import os
import stat
import sys
import tempfile

cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memchr, memcmp
from cpython.bytes cimport PyBytes_AS_STRING
from cpython.dict cimport PyDict_SetDefault

from fastcore._core.includes.fc_http cimport (
    FC_REQ_CHUNKED, FC_REQ_EXPECT_CONTINUE, FC_REQ_HAS_LENGTH, fc_header_t,
    fc_request_head_t, fc_request_info_t,
)
from fastcore._core.parser cimport RequestParser, ascii_only, is_head_request, method_str, text
from fastcore._core.connection cimport Connection, RequestHandler, S_APP, S_CLOSED, client_ready
from fastcore._core.includes.fc_realip cimport FC_PROTO_HTTPS
from fastcore._core.loop cimport Loop
from fastcore._core.stats cimport WorkerStats
from fastcore._core.framing cimport AppResponse


cdef object error_log = logging.getLogger("fastcore.error")


class EmptyInput:
    """wsgi.input of a request without a body: always at EOF, stateless, shared."""

    def read(self, size=-1):
        return b""

    def readline(self, size=-1):
        return b""

    def readlines(self, hint=-1):
        return []

    def __iter__(self):
        return iter(())


EMPTY_INPUT = EmptyInput()


class FileWrapper:
    """wsgi.file_wrapper (PEP 3333): iterates a file in blocks; over a
    regular file the gateway sends it with sendfile instead."""

    def __init__(self, filelike, blksize=8192):
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self):
        read = self.filelike.read
        while True:
            block = read(self.blksize)
            if not block:
                return
            yield block

    def close(self):
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()

    def segment(self):
        """(fd, offset, size) when the file can go out with sendfile, else None."""
        try:
            fd = self.filelike.fileno()
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                return None
            tell = getattr(self.filelike, "tell", None)
            offset = tell() if tell is not None else os.lseek(fd, 0, os.SEEK_CUR)
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            return None
        return fd, offset, max(0, info.st_size - offset)
cdef object SENTINEL = object()
cdef bytes CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
cdef bytes RETRY_AFTER = b"Retry-After: 1\r\n"   # a refusal for overload: the queue moves within seconds
cdef bytes ERROR_500 = (b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\n"
                        b"Content-Length: 22\r\n\r\nInternal Server Error\n")

# ---- environ keys for field names (PEP 3333, CGI 4.1.18) ---------------------
# A small cache from the raw field name to its environ key, looked up by
# (length, first, last byte) like the parser's name cache and filled on a
# miss. A name with "_" maps to None: it is dropped, so that X_Forwarded_For
# cannot pose as X-Forwarded-For once both become HTTP_X_FORWARDED_FOR.
cdef list key_slot_names = [None] * 1024
cdef list key_slot_keys = [None] * 1024


cdef inline size_t key_slot(const char *at, size_t n) noexcept:
    return (n * 7 + <unsigned char>at[0] * 3 + <unsigned char>at[n - 1] * 5) & 1023


cdef object environ_key(const char *at, size_t n):
    cdef size_t slot = key_slot(at, n)
    cdef object cached = <object>PyList_GET_ITEM(key_slot_names, slot)
    cdef bytes raw
    if cached is not None:
        raw = <bytes>cached
        if <size_t>PyBytes_GET_SIZE(raw) == n and memcmp(PyBytes_AS_STRING(raw), at, n) == 0:
            return <object>PyList_GET_ITEM(key_slot_keys, slot)
    raw = PyBytes_FromStringAndSize(at, n)
    if memchr(at, c'_', n) != NULL:
        key = None
    else:
        upper = raw.decode("latin-1").upper().replace("-", "_")
        key = upper if upper in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + upper
    key_slot_names[slot] = raw
    key_slot_keys[slot] = key
    return key


cdef str percent_decode(const char *at, size_t n):
    """PATH_INFO: %XX decoded to bytes, read as latin-1 (PEP 3333 native
    strings); a % not followed by two hex digits stays as it is."""
    cdef char *out
    cdef size_t i = 0, j = 0
    cdef int hi, lo
    if memchr(at, c'%', n) == NULL:
        return text(at, n, False)
    out = <char *>malloc(n)
    if out == NULL:
        raise MemoryError()
    try:
        while i < n:
            if at[i] == c'%' and i + 2 < n:
                hi = hex_digit(at[i + 1])
                lo = hex_digit(at[i + 2])
                if hi >= 0 and lo >= 0:
                    out[j] = <char>(hi * 16 + lo)
                    j += 1
                    i += 3
                    continue
            out[j] = at[i]
            j += 1
            i += 1
        return text(out, j, False)
    finally:
        free(out)


cdef inline int hex_digit(char c) noexcept:
    if c'0' <= c <= c'9':
        return c - c'0'
    if c'a' <= c <= c'f':
        return c - c'a' + 10
    if c'A' <= c <= c'F':
        return c - c'A' + 10
    return -1


# ---- response head validation -----------------------------------------------

cdef frozenset TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789"
                                       "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
cdef frozenset HOP_BY_HOP = frozenset(["connection", "keep-alive", "transfer-encoding", "upgrade",
                                       "proxy-connection", "te", "trailer"])

# What a response header from the application is, once checked:
cdef enum HeaderKind:
    H_PLAIN = 0          # sent as given
    H_LENGTH = 1         # Content-Length: the server frames with it
    H_CONNECTION = 2     # Connection: read for "close", not forwarded
    H_HOP = 3            # other hop-by-hop fields: the server frames and manages the connection

# Applications send the same few header lines on every response, so a
# checked (name, value) pair is cached with its kind and its encoded line:
# validation, case folding and encoding happen once per distinct line.
cdef dict header_cache = {}
cdef Py_ssize_t HEADER_CACHE_MAX = 4096
cdef dict status_cache = {}


cdef tuple check_header(object item):
    """(kind, encoded line) for one (name, value) from start_response; raises
    for anything that would break the response (the application gets a 500)."""
    cached = header_cache.get(item)
    if cached is not None:
        return <tuple>cached
    if type(item) is not tuple or len(item) != 2:
        raise TypeError(f"response header {item!r} is not a (name, value) tuple")
    name, value = item
    if type(name) is not str or not name or not TOKEN_CHARS.issuperset(name):
        raise ValueError(f"invalid response header name {name!r} from the application")
    if type(value) is not str:
        raise TypeError(f"value of response header {name!r} is not a str: {value!r}")
    if "\n" in value or "\r" in value or "\0" in value:
        raise ValueError(f"value of response header {name!r} contains CR, LF or NUL")
    lower = name.lower()
    if lower == "content-length":
        if not value.isdigit():
            raise ValueError(f"invalid Content-Length {value!r} from the application")
        kind = H_LENGTH
    elif lower == "connection":
        kind = H_CONNECTION
    elif lower in HOP_BY_HOP:
        kind = H_HOP
    else:
        kind = H_PLAIN
    line = f"{name}: {value}\r\n".encode("latin-1")  # UnicodeEncodeError: not latin-1
    # (kind, encoded line, value, Content-Length as an int)
    entry = (kind, line, value, int(value) if kind == H_LENGTH else -1)
    if len(header_cache) < HEADER_CACHE_MAX:
        header_cache[item] = entry
    return entry


cdef tuple check_status(object status, bint http11):
    """(code, encoded status line) of a PEP 3333 status string."""
    key = (status, http11)
    cached = status_cache.get(key)
    if cached is not None:
        return <tuple>cached
    if type(status) is not str or len(status) < 3 or not status[:3].isdigit() or (
            len(status) > 3 and status[3] != " ") or "\n" in status or "\r" in status:
        raise ValueError(f"invalid status {status!r} from the application: expected '200 OK'")
    line = (("HTTP/1.1 " if http11 else "HTTP/1.0 ") + status + "\r\n").encode("latin-1")
    entry = (int(status[:3]), line)
    if len(status_cache) < 1024:
        status_cache[key] = entry
    return entry


@cython.final
cdef class Exchange(AppResponse):
    """One request and its response, from on_head to the last byte (the
    response's framing: AppResponse, framing.pyx)."""
    cdef readonly dict environ
    cdef Gateway gateway
    cdef object body                 # bytearray while in memory
    cdef object spool                # temporary file once over body_buffer_size
    cdef size_t body_size
    cdef object result               # what the application returned
    cdef object iterator
    cdef bint closed                 # result.close() has run
    cdef bint threaded
    cdef double began                # loop time when the head was parsed

    cdef int account(self, int status) except -1:
        """Counts the finished exchange in the worker's stats and access log."""
        cdef Connection conn = self.conn
        cdef WorkerStats stats = conn.server.stats
        cdef double seconds = conn.loop.clock() - self.began
        cdef long long body = self.sent if not self.no_body else 0
        if stats is not None:
            stats.record_response(status, self.head_bytes + body, seconds)
            stats.s.route_wsgi += 1
        log = self.gateway.access_log
        if log is not None:
            env = self.environ
            log.log(env["REMOTE_ADDR"], env["REQUEST_METHOD"], env["RAW_URI"], env["SERVER_PROTOCOL"],
                    status, body, int(seconds * 1e6), env.get("HTTP_USER_AGENT", ""),
                    env.get("HTTP_REFERER", ""),
                    # the id RequestID settled on (a trusted one, or new) when it runs
                    env.get("fastcore.request_id") or env.get("HTTP_X_REQUEST_ID")
                    or self.gateway.new_request_id())
        return 0

    def start_response(self, status, headers, exc_info=None):
        """PEP 3333 start_response; returns the write() callable."""
        cdef tuple checked, entry
        cdef int kind
        if exc_info is not None:
            try:
                if self.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.started:
            raise AssertionError("start_response called a second time without exc_info")
        checked = check_status(status, self.http11)
        if type(headers) is not list:
            raise TypeError(f"response headers must be a list of (name, value) tuples, got {type(headers).__name__}")
        self.declared = -1
        self.keep_alive = self.conn.request_keep_alive
        lines = []
        for item in headers:
            entry = check_header(item)
            kind = entry[0]
            if kind == H_PLAIN:
                lines.append(entry[1])
            elif kind == H_LENGTH:
                self.declared = entry[3]
                self.length_line = entry[1]
            elif kind == H_CONNECTION:
                if "close" in (<str>entry[2]).lower():
                    self.keep_alive = False
            # H_HOP: the server frames the message and manages the connection
        self.status = checked[0]
        self.status_line = checked[1]
        self.header_lines = lines
        self.started = True
        self.no_body = self.is_head or self.status < 200 or self.status == 204 or self.status == 304
        return self.write

    def write(self, data):
        """PEP 3333 write() callable: data goes out before the iterable's."""
        if not self.started:
            raise AssertionError("write() called before start_response()")
        if self.threaded:
            self.gateway.deliver_threadsafe(self, data)
        else:
            self.write_body(data)

    cdef int write_body(self, object data) except -1:
        cdef Py_ssize_t n
        if type(data) is not bytes:
            if isinstance(data, (bytearray, memoryview)):
                data = bytes(data)
            else:
                raise TypeError(f"the application yielded {type(data).__name__}, not bytes")
        n = PyBytes_GET_SIZE(data)
        if not self.head_sent:
            if n == 0:
                return 0  # PEP 3333: the head waits for the first non-empty bytes
            self.send_head(-1)
        return self.write_bytes(<bytes>data)

    cdef str request_text(self):
        return f"{self.environ.get('REQUEST_METHOD')} {self.environ.get('RAW_URI')}"

    cdef int finish(self) except -1:
        """The iterable is exhausted: complete the framing and hand back the connection."""
        cdef bint keep
        if not self.head_sent:
            self.send_head(-1 if self.is_head else 0)
        keep = self.end_framing(None)
        self.close_result()
        self.account(self.status)
        self.conn.end_response(keep and self.keep_alive)
        return 0

    cdef int close_result(self) except -1:
        if self.closed:
            return 0
        self.closed = True
        close = getattr(self.result, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                error_log.exception("error in close() of the application's response")
        if self.spool is not None:
            self.spool.close()
            self.spool = None
        return 0

    cdef int fail(self, str what) except -1:
        """The application raised: log it; answer 500 if nothing was sent yet,
        else cut the connection (the client sees a truncated response)."""
        error_log.error("error in the application %s for %s %s", what,
                        self.environ.get("REQUEST_METHOD"), self.environ.get("RAW_URI"),
                        exc_info=sys.exc_info())
        self.close_result()
        if self.conn.state == S_CLOSED:
            return 0
        if self.head_sent:
            self.account(self.status)
            self.conn.close()
        else:
            self.head_sent = True
            self.head_bytes = len(ERROR_500)
            self.sent = 0
            self.no_body = True
            self.account(500)
            self.conn.send(ERROR_500)
            self.conn.end_response(True)
        return 0

    cdef object input_stream(self):
        if self.spool is not None:
            self.spool.seek(0)
            return self.spool
        if self.body is None:
            return EMPTY_INPUT
        return io.BytesIO(self.body)


cdef class Gateway(RequestHandler):
    """Runs one WSGI application for the connections of a worker."""
    cdef object app
    cdef readonly object config
    cdef bint server_header
    cdef size_t body_buffer_size
    cdef size_t high_water
    cdef size_t max_pending          # requests that may wait for an application thread
    cdef str script_name
    cdef object threads              # fastcore.wsgi.AppThreads when threads > 1 or auto
    cdef bint auto_threads           # threads == "auto": inline until a call is slow
    cdef double slow_call            # auto_threads_after
    cdef double threads_hold         # auto_threads_hold
    cdef double threaded_until       # auto: loop time until which calls go to the threads
    cdef double last_slow_call       # auto: loop time of the last slow call (-inf: none yet)
    cdef public object access_log     # fastcore.logs.AccessLog, or None (off)
    cdef public object new_request_id # callable for requests without X-Request-ID

    def __cinit__(self, app, config, threads=None):
        self.app = app
        self.config = config
        self.server_header = config.server_header
        self.body_buffer_size = config.body_buffer_size
        self.high_water = config.write_buffer_high
        self.script_name = config.root_path
        self.threads = threads
        self.auto_threads = config.threads == "auto"
        self.slow_call = config.auto_threads_after
        self.threads_hold = config.auto_threads_hold
        self.last_slow_call = -1e18
        self.max_pending = config.max_pending
        self.limit_rate = config.limit_rate
        self.limit_rate_after = config.limit_rate_after
        # chosen now: found first when a worker is out of descriptors, the
        # search fails as "no usable temporary directory" instead of EMFILE
        tempfile.gettempdir()

    # -- RequestHandler ----------------------------------------------------------

    cdef tuple refused_request(self, Connection conn):
        ex = conn.exchange
        if not isinstance(ex, Exchange):
            return None
        env = (<Exchange>ex).environ
        return env["REQUEST_METHOD"], env["RAW_URI"], env["SERVER_PROTOCOL"]

    cdef int on_head(self, Connection conn) except -1:
        cdef Exchange ex = Exchange.__new__(Exchange)
        cdef RequestParser p = conn.parser
        ex.gateway = self
        ex.conn = conn
        ex.server_header = self.server_header
        ex.environ = self.build_environ(conn, p)
        ex.http11 = p.head.minor_version == 1
        ex.is_head = is_head_request(p)
        ex.began = conn.loop.clock()
        conn.exchange = ex
        if p.info.flags & FC_REQ_EXPECT_CONTINUE and (
                p.info.flags & FC_REQ_CHUNKED or (p.info.flags & FC_REQ_HAS_LENGTH and p.info.content_length)):
            # the body is about to be read: tell the client to send it
            conn.send_interim(CONTINUE)
        return 0

    cdef int on_body(self, Connection conn, const char *at, size_t n) except -1:
        cdef Exchange ex = <Exchange>conn.exchange
        ex.body_size += n
        if ex.spool is not None:
            ex.spool.write(PyBytes_FromStringAndSize(at, n))
        elif ex.body_size > self.body_buffer_size:
            ex.spool = tempfile.TemporaryFile(prefix="fastcore-body-")
            if ex.body is not None:
                ex.spool.write(ex.body)
                ex.body = None
            ex.spool.write(PyBytes_FromStringAndSize(at, n))
        elif ex.body is None:
            ex.body = bytearray(PyBytes_FromStringAndSize(at, n))
        else:
            ex.body += PyBytes_FromStringAndSize(at, n)
        return 0

    cdef int on_end(self, Connection conn) except -1:
        cdef Exchange ex = <Exchange>conn.exchange
        cdef RequestParser p = conn.parser
        environ = ex.environ
        if ex.body is not None or ex.spool is not None:
            environ["wsgi.input"] = ex.input_stream()  # the template holds EMPTY_INPUT
        if p.info.flags & FC_REQ_CHUNKED:
            # de-chunked: the application sees how much there is to read
            environ["CONTENT_LENGTH"] = str(ex.body_size)
        if self.threads is not None and (not self.auto_threads or conn.loop.now < self.threaded_until):
            if self.threads.waiting() >= self.max_pending:
                return self.refuse_pending(ex)
            if conn.server.stats is not None and conn.server.stats.s.app_overloaded:
                conn.server.stats.s.app_overloaded = 0  # there is room again
            ex.threaded = True
            self.threads.submit(self, ex)
            return 0
        if conn.loop.deferred_handles:
            # the application may take long: what other connections finished
            # in this batch leaves before it runs, not after
            conn.loop.run_deferred_except(conn)
        cdef double started = conn.loop.clock() if self.auto_threads else 0
        try:
            ex.result = self.app(environ, ex.start_response)
        except Exception:
            ex.fail("call")
        else:
            self.produce(ex)
        if self.auto_threads and self.threads is not None:
            self.note_call(conn.loop, conn.loop.clock() - started)
        return 0

    cdef int refuse_pending(self, Exchange ex) except -1:
        """max_pending requests already wait for an application thread: 503
        now, with Retry-After, rather than a wait of unbounded length; the
        worker reports itself overloaded until its queue has room."""
        cdef WorkerStats stats = ex.conn.server.stats
        if stats is not None:
            stats.s.app_overloaded = 1
            stats.s.limit_refused_max_pending += 1
        # at the request's end: the head's spans may be gone (the gateway's
        # refused_request tells the access log the request from its environ)
        ex.conn.send_error(503, "the application is busy (max_pending requests wait), retry shortly", ex.is_head,
                           False, RETRY_AFTER)
        return 0

    cdef int note_call(self, Loop loop, double seconds) except -1:
        """auto: a call of `seconds` has ended. A slow one keeps the calls on
        the threads for threads_hold; inline, it takes the second slow call
        within threads_hold to move them there: one alone is most often a
        cold start (first imports, a first database connection), not an
        application that waits."""
        cdef double now
        if seconds < self.slow_call:
            return 0
        now = loop.clock()
        if now >= self.threaded_until:
            if now - self.last_slow_call > self.threads_hold:
                self.last_slow_call = now
                return 0
            error_log.info("an application call took %.0f ms (auto_threads_after %s s), the second in %s s: "
                           "the application runs on up to %d threads for the next %s s (auto_threads_hold)",
                           seconds * 1e3, self.slow_call, self.threads_hold, self.threads.count, self.threads_hold)
        self.last_slow_call = now
        self.threaded_until = now + self.threads_hold
        return 0

    cdef int on_writable(self, Connection conn) except -1:
        cdef Exchange ex = <Exchange>conn.exchange
        if ex is not None and not ex.threaded:
            self.produce(ex)
        elif ex is not None:
            self.threads.resume(ex)
        return 0

    cdef int on_close(self, Connection conn) except -1:
        cdef Exchange ex = <Exchange>conn.exchange
        if ex is not None:
            if ex.threaded:
                self.threads.cancel(ex)
            else:
                ex.close_result()
        return 0

    # -- producing the response (loop thread) ------------------------------------

    cdef int produce(self, Exchange ex) except -1:
        cdef Connection conn = ex.conn
        cdef object result = ex.result
        cdef object chunk
        try:
            if ex.iterator is None and not ex.started:
                # PEP 3333: a generator may call start_response when first
                # iterated, before it yields its first body bytes
                ex.iterator = iter(result)
                chunk = next(ex.iterator, SENTINEL)
                if not ex.started:
                    raise RuntimeError("the application returned without calling start_response()")
                if chunk is SENTINEL:
                    ex.finish()
                    return 0
                ex.write_body(chunk)
            if ex.iterator is None:
                if type(result) is list and len(<list>result) == 1 and not ex.head_sent and \
                        type(<object>PyList_GET_ITEM(result, 0)) is bytes:
                    # the common case: one body, its length known up front
                    chunk = <object>PyList_GET_ITEM(result, 0)
                    ex.send_head(PyBytes_GET_SIZE(chunk) if ex.declared < 0 else ex.declared)
                    ex.write_body(chunk)
                    ex.finish()
                    return 0
                if type(result) is FileWrapper and self.send_file(ex, <object>result):
                    return 0
                ex.iterator = iter(result)
            while True:
                if conn.out.pending >= self.high_water:
                    conn.flush()
                    if conn.state == S_CLOSED:
                        ex.close_result()
                        return 0
                    if conn.out.pending >= self.high_water:
                        break
                chunk = next(ex.iterator, SENTINEL)
                if chunk is SENTINEL:
                    ex.finish()
                    return 0
                ex.write_body(chunk)
            conn.wait_writable()  # on_writable resumes it when the queue drains
        except Exception:
            ex.fail("response")
        return 0

    cdef bint send_file(self, Exchange ex, object wrapper) except -1:
        """wsgi.file_wrapper over a regular file: sendfile from the page
        cache, the bytes never pass through Python. False: iterate instead."""
        segment = wrapper.segment()
        if segment is None:
            return False
        fd, offset, size = segment
        ex.send_whole_file(fd, offset, size)
        ex.finish()
        return True

    # -- threads > 1: called on the loop thread by fastcore.wsgi.AppThreads ------

    def deliver_threadsafe(self, Exchange ex, data):
        self.threads.deliver(self, ex, data)

    def start_chunk(self, Exchange ex, object data):
        """A chunk produced by an application thread, now on the loop thread."""
        if ex.conn.state == S_CLOSED or ex.closed:
            return False
        try:
            ex.write_body(data)
            ex.conn.flush()
        except Exception:
            ex.fail("response")
            return False
        if ex.conn.state == S_CLOSED:
            return False
        if ex.conn.out.pending < self.high_water:
            return True
        ex.conn.wait_writable()  # on_writable resumes the application thread
        return False

    def complete(self, Exchange ex, object error, double seconds=0):
        """The application thread is done with ex (error: its exc_info or
        None) after `seconds` of work on it."""
        cdef WorkerStats stats = ex.conn.server.stats
        if stats is not None and stats.s.app_overloaded and self.threads.waiting() < self.max_pending:
            stats.s.app_overloaded = 0
        if self.auto_threads:
            self.note_call(ex.conn.loop, seconds)
        if ex.conn.state == S_CLOSED:
            ex.close_result()
            return
        if error is not None:
            try:
                raise error[1].with_traceback(error[2])
            except Exception:
                ex.fail("response")
            return
        try:
            if type(ex.result) is FileWrapper and ex.iterator is None and self.send_file(ex, ex.result):
                return
            ex.finish()
        except Exception:
            ex.fail("response")

    def call_app(self, Exchange ex):
        """Runs on an application thread: calls the app, returns the iterator."""
        ex.result = self.app(ex.environ, ex.start_response)
        if not ex.started:
            # PEP 3333: a generator may call start_response when first iterated
            ex.iterator = iter(ex.result)
            first = next(ex.iterator, SENTINEL)
            if not ex.started:
                raise RuntimeError("the application returned without calling start_response()")
            if first is not SENTINEL:
                ex.iterator = itertools.chain((first,), ex.iterator)
            return ex.iterator
        if type(ex.result) is FileWrapper and ex.result.segment() is not None:
            return None  # sendfile on the loop thread
        ex.iterator = iter(ex.result)
        return ex.iterator

    def queue_pending(self, Exchange ex):
        return ex.conn.out.pending

    def close_result(self, Exchange ex):
        ex.close_result()

    # -- environ -----------------------------------------------------------------

    cdef dict build_environ(self, Connection conn, RequestParser p):
        cdef fc_request_head_t *h = &p.head
        cdef fc_request_info_t *info = &p.info
        cdef fc_header_t *f
        cdef size_t i
        cdef bint ascii = ascii_only(h.method.at, <size_t>(p.buf + p.start - h.method.at))
        cdef dict env = conn.listener.environ.copy()
        cdef str path
        env["REQUEST_METHOD"] = method_str(h.method.at, h.method.len)
        env["RAW_URI"] = text(h.target.at, h.target.len, ascii)
        path = percent_decode(info.path.at, info.path.len)
        if self.script_name:
            if path == self.script_name or path.startswith(self.script_name + "/"):
                path = path[len(self.script_name):]
        env["PATH_INFO"] = path
        env["QUERY_STRING"] = text(info.query.at, info.query.len, ascii) if info.query.len else ""
        env["SERVER_PROTOCOL"] = "HTTP/1.1" if h.minor_version == 1 else "HTTP/1.0"
        if conn.peer_host_str is None:
            conn._peer_strings()
        client_ready(conn)
        # the peer, or the client a trusted proxy named (realip.pyx)
        env["REMOTE_ADDR"] = conn.client_text() if conn.client_forwarded else conn.peer_host_str
        env["REMOTE_PORT"] = conn.peer_port_str
        for i in range(h.num_headers):
            f = &p.fields[i]
            key = environ_key(f.name.at, f.name.len)
            if key is None:
                continue
            value = text(f.value.at, f.value.len, ascii)
            old = <object>PyDict_SetDefault(env, key, value)
            if old is not value:
                # a repeated field: HTTP_* values are joined (Cookie with "; ")
                if (<str>key).startswith("HTTP_"):
                    env[key] = old + ("; " if key == "HTTP_COOKIE" else ", ") + value
                else:
                    env[key] = value
        if conn.forwarded_proto:
            # X-Forwarded-Proto of a trusted peer (read by client_ready)
            env["wsgi.url_scheme"] = "https" if conn.forwarded_proto == FC_PROTO_HTTPS else "http"
        if conn.tls != NULL:
            # HTTPS, SSL_PROTOCOL, SSL_CLIENT_S_DN, ... (tls.session_environ)
            env.update(conn.tls_environ())
        if info.flags & FC_REQ_HAS_LENGTH:
            # the parsed decimal, not the field as sent: whatever the parser
            # lets through ("005", repeated fields), CONTENT_LENGTH is one number
            env["CONTENT_LENGTH"] = str(info.content_length)
        return env
