# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Incremental HTTP/1.1 framing over the C head parser (src_c/fc_http).

Theory of operation
-------------------
A Framer owns one input buffer. Bytes are appended at `end`; `start` is the
first byte not yet consumed. `next_event()` advances a state machine and
returns one event at a time:

    ST_HEAD --head parsed--> ST_LENGTH | ST_CHUNK_SIZE | ST_UNTIL_CLOSE | ST_END
    ST_CHUNK_SIZE -> ST_CHUNK_DATA -> ST_CHUNK_CRLF -> ST_CHUNK_SIZE ... -> ST_TRAILERS -> ST_END
    ST_END --EV_END--> ST_HEAD             any error --> ST_DEAD (for good)

Invariants:
- start <= end <= cap; bytes before `start` are never read again.
- EV_BODY hands out a span into the buffer, and EV_HEAD leaves spans in
  `head`/`info`: both stay valid until the next reserve()/reserve_read()/
  append(), the only places where the buffer moves.
- While a head is awaited the buffer is as small as the head allows
  (HEAD_BUFFER, doubled when full); in a body it takes the caller's read
  size. A connection sending a head slowly costs little memory.
- The buffer never holds more than one head (bounded by max_header_bytes)
  plus what the caller appended: body bytes are handed out as they arrive.
- After an error the framer is dead: every later call raises the same
  ParseError, because the stream position is lost (RFC 9112 says to close).

The Python API (RequestParser.feed, ResponseParser.feed) is a thin loop over
next_event(); the server's connections drive next_event() directly.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.unicode cimport PyUnicode_DecodeLatin1
from cpython.ref cimport PyObject, Py_INCREF
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from libc.stdint cimport uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memchr, memcmp, memcpy, memmove
from posix.unistd cimport read
from cpython.exc cimport PyErr_SetFromErrno

from fastcore._core.includes.fc_http cimport *

DEFAULT_LIMITS = {
    "max_body": 16 * 1024 * 1024,
    "max_request_line": 8190,
    "max_header_bytes": 32 * 1024,
    "max_headers": 100,
    "max_chunk_line": 4096,
}

# The buffer a connection starts a request head in. A head that is still
# arriving (a slow client, or a slowloris one) costs this much and no more,
# not a whole read_buffer_size: 2,000 such connections hold 4 MiB, not 32.
# 2 KiB holds a typical browser head (about 700 bytes, more with cookies)
# in the first read; a larger head doubles the buffer each time it fills,
# up to what max_header_bytes lets through. Bodies are read read_buffer_size
# at a time as soon as the head is parsed (see reserve_read).
HEAD_BUFFER = 2048
cdef size_t head_buffer = HEAD_BUFFER

# Read buffers of idle connections go back to a small pool instead of to
# free(): a worker releases many at once at the end of an event batch, and
# handing them all back to malloc makes it trim and regrow the heap (a brk
# and fresh page faults per batch). Only buffers of head_buffer bytes, the
# size every connection starts with, are pooled; larger ones (a big head, a
# body) are freed. The pool holds at most POOL_MAX buffers (128 KiB), so
# idle connections still hold no memory of their own.
DEF POOL_MAX = 64
cdef size_t POOLED_SIZE = HEAD_BUFFER
cdef char *buffer_pool[POOL_MAX]
cdef int pooled = 0


cdef char *take_buffer(size_t want, size_t *cap) noexcept:
    global pooled
    if want <= POOLED_SIZE and pooled > 0:
        pooled -= 1
        cap[0] = POOLED_SIZE
        return buffer_pool[pooled]
    cap[0] = want
    return <char *>malloc(want)


cdef void give_buffer(char *buf, size_t cap) noexcept:
    global pooled
    if cap == POOLED_SIZE and pooled < POOL_MAX:
        buffer_pool[pooled] = buf
        pooled += 1
    else:
        free(buf)


class ParseError(Exception):
    """A message that cannot be parsed; `status` is what a server answers."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def simd_level():
    """The scanner level in use: 0 scalar, 1 SSE2, 2 AVX2."""
    return <int>fc_http_simd()


def set_simd_level(int level):
    """Forces a scanner level (tests, benchmarks); returns the level in force."""
    return <int>fc_http_set_simd(<fc_simd_level_t>level)


cdef extern from "Python.h":
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    void *PyUnicode_DATA(object o)


cdef str latin1(const char *at, size_t n):
    return PyUnicode_DecodeLatin1(at, n, NULL)


cdef inline str ascii_str(const char *at, size_t n):
    """A str from bytes known to be ASCII: no scan for the widest character."""
    cdef object s = PyUnicode_New(n, 127)
    memcpy(PyUnicode_DATA(s), at, n)
    return <str>s


cdef bint ascii_only(const char *at, size_t n) noexcept:
    """fc_ascii_only for the other modules: they reach the C core only
    through this module, so src_c is linked once."""
    return fc_ascii_only(at, n)


cdef str text(const char *at, size_t n, bint ascii):
    return ascii_str(at, n) if ascii else PyUnicode_DecodeLatin1(at, n, NULL)


# Field names a browser or client sends on nearly every request, as sent:
# decoding them is a third of the cost of a Python view of a request, so
# they come from a small table of ready str objects instead. A name is
# looked up by (length, first byte, last byte) and confirmed with memcmp;
# anything else is decoded as usual.
cdef tuple COMMON_NAMES = (
    "Host", "User-Agent", "Accept", "Accept-Language", "Accept-Encoding",
    "Accept-Charset", "Connection", "Keep-Alive", "Cookie", "Cache-Control",
    "Content-Type", "Content-Length", "Transfer-Encoding", "Referer", "Origin",
    "Authorization", "If-None-Match", "If-Modified-Since", "Upgrade",
    "Upgrade-Insecure-Requests", "DNT", "Pragma", "Range", "Expect",
    "X-Forwarded-For", "X-Forwarded-Proto", "X-Real-IP", "X-Requested-With",
    "Sec-Fetch-Site", "Sec-Fetch-Mode", "Sec-Fetch-Dest", "Sec-Fetch-User",
    "sec-ch-ua", "sec-ch-ua-mobile", "sec-ch-ua-platform", "Priority",
    "host", "user-agent", "accept", "accept-language", "accept-encoding",
    "connection", "cookie", "cache-control", "content-type", "content-length",
    "transfer-encoding", "referer", "origin", "authorization", "x-forwarded-for",
)
# slot -> the cached name: its bytes, their length, and the str (a strong
# reference held by COMMON_NAMES for the life of the module)
cdef const char *slot_bytes[512]
cdef size_t slot_len[512]
cdef PyObject *slot_str[512]
cdef list _slot_keepalive = []


cdef inline size_t name_slot(const char *at, size_t n) noexcept:
    return (n * 7 + <unsigned char>at[0] * 3 + <unsigned char>at[n - 1]) & 511


cdef int _fill_name_slots() except -1:
    cdef bytes raw
    cdef size_t slot
    for name in COMMON_NAMES:
        raw = name.encode("latin-1")
        slot = name_slot(raw, len(raw))
        if slot_str[slot] == NULL:  # on a collision the first one wins
            _slot_keepalive.append(raw)
            slot_bytes[slot] = raw
            slot_len[slot] = len(raw)
            slot_str[slot] = <PyObject *>name
    return 0


_fill_name_slots()


cdef inline str field_name(const char *at, size_t n, bint ascii):
    cdef size_t slot = name_slot(at, n)
    if slot_len[slot] == n and memcmp(slot_bytes[slot], at, n) == 0:
        return <str>slot_str[slot]
    return text(at, n, ascii)


cdef list header_list(fc_header_t *fields, size_t n, bint ascii=False):
    """(name, value) str pairs; `ascii` says the caller checked the bytes.
    Built presized with stolen references: no list growth, no arg tuples."""
    cdef list out = PyList_New(n)
    cdef tuple pair
    cdef object name, value
    cdef size_t i
    for i in range(n):
        name = field_name(fields[i].name.at, fields[i].name.len, ascii)
        value = text(fields[i].value.at, fields[i].value.len, ascii)
        pair = PyTuple_New(2)
        Py_INCREF(name)
        PyTuple_SET_ITEM(pair, 0, name)
        Py_INCREF(value)
        PyTuple_SET_ITEM(pair, 1, value)
        Py_INCREF(pair)
        PyList_SET_ITEM(out, i, pair)
    return out


cdef str method_str(const char *at, size_t n):
    # the common methods come back as the same str objects: no allocation
    if n == 3 and memcmp(at, b"GET", 3) == 0:
        return "GET"
    if n == 4 and memcmp(at, b"POST", 4) == 0:
        return "POST"
    if n == 4 and memcmp(at, b"HEAD", 4) == 0:
        return "HEAD"
    if n == 3 and memcmp(at, b"PUT", 3) == 0:
        return "PUT"
    if n == 6 and memcmp(at, b"DELETE", 6) == 0:
        return "DELETE"
    if n == 7 and memcmp(at, b"OPTIONS", 7) == 0:
        return "OPTIONS"
    if n == 5 and memcmp(at, b"PATCH", 5) == 0:
        return "PATCH"
    return latin1(at, n)


cdef class FieldArray:
    def __cinit__(self, size_t capacity):
        self.fields = <fc_header_t *>malloc(capacity * sizeof(fc_header_t))
        if self.fields == NULL:
            raise MemoryError()
        self.capacity = capacity

    def __dealloc__(self):
        free(self.fields)


cdef class Framer:
    """Body framing and buffering shared by the request and response parsers."""

    def __cinit__(self, *, max_body=DEFAULT_LIMITS["max_body"],
                  max_request_line=DEFAULT_LIMITS["max_request_line"],
                  max_header_bytes=DEFAULT_LIMITS["max_header_bytes"],
                  max_headers=DEFAULT_LIMITS["max_headers"],
                  max_chunk_line=DEFAULT_LIMITS["max_chunk_line"], FieldArray shared_fields=None):
        for name, value in (("max_body", max_body), ("max_request_line", max_request_line),
                            ("max_header_bytes", max_header_bytes), ("max_headers", max_headers),
                            ("max_chunk_line", max_chunk_line)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.max_body = max_body
        self.limits.max_request_line = max_request_line
        self.limits.max_header_bytes = max_header_bytes
        self.max_headers = max_headers
        self.max_chunk_line = max_chunk_line
        if shared_fields is None or shared_fields.capacity < <size_t>max_headers:
            shared_fields = FieldArray(max_headers)
        self.field_array = shared_fields
        self.fields = shared_fields.fields
        self.state = ST_HEAD

    def __dealloc__(self):
        if self.buf != NULL:
            give_buffer(self.buf, self.cap)

    # -- buffer --------------------------------------------------------------

    cdef char *reserve(self, size_t n) except NULL:
        """Room for n more bytes at buf + end (moves the buffer: spans die)."""
        cdef size_t live = self.end - self.start
        cdef size_t want
        cdef char *grown
        if self.cap - self.end >= n and self.buf != NULL:
            return self.buf + self.end
        if self.start > 0:
            memmove(self.buf, self.buf + self.start, live)
            self.start = 0
            self.end = live
            if self.cap - self.end >= n:
                return self.buf + self.end
        want = self.cap * 2 if self.cap else head_buffer
        while want - live < n:
            want *= 2
        if self.buf == NULL:
            grown = take_buffer(want, &self.cap)
            if grown == NULL:
                raise MemoryError()
            self.buf = grown
            return self.buf + self.end
        grown = <char *>realloc(self.buf, want)
        if grown == NULL:
            raise MemoryError()
        self.buf = grown
        self.cap = want
        return self.buf + self.end

    cdef char *reserve_read(self, size_t most, size_t *room) except NULL:
        """Room for one read() of at most `most` bytes (read_buffer_size) at
        buf + end; *room is how many bytes to read (1 <= *room <= most).
        Moves the buffer like reserve(). While a head is awaited the buffer
        starts at head_buffer and grows (doubling) only once it is full, so
        a head still arriving costs what it has sent, rounded up to a power
        of two; the head limits (414/431) stop it long before it is large.
        Anywhere in a body it offers `most` at once: large bodies are read
        in big chunks, as before."""
        cdef size_t free_
        if self.state != ST_HEAD:
            self.reserve(most)
            room[0] = most
            return self.buf + self.end
        if self.start == self.end:
            self.start = self.end = 0
        if self.buf == NULL or self.end == self.cap:
            self.reserve(1)  # allocates head_buffer, or compacts, or doubles
        free_ = self.cap - self.end
        room[0] = free_ if free_ < most else most
        return self.buf + self.end

    cdef void commit(self, size_t n) noexcept:
        self.end += n

    cdef int append(self, const char *data, size_t n) except -1:
        if self.start == self.end:
            self.start = self.end = 0
        memcpy(self.reserve(n), data, n)
        self.end += n
        return 0

    cdef void release_buffer(self) noexcept:
        """Frees the buffer when it holds nothing (idle keep-alive connections)."""
        if self.start == self.end and self.buf != NULL:
            give_buffer(self.buf, self.cap)
            self.buf = NULL
            self.cap = self.start = self.end = 0

    cdef size_t buffered(self) noexcept:
        return self.end - self.start

    @property
    def buffer_size(self):
        """Bytes allocated for the input buffer (0 when released): what this
        parser costs a connection beyond its fixed state."""
        return self.cap

    def read_from(self, int fd, size_t most):
        """Reads once from fd straight into the buffer, as a server
        connection does (at most `most` bytes, fewer while a head is still
        arriving), then returns (bytes read, messages completed); (0, [])
        at end of stream. OSError as os.read raises it."""
        cdef size_t room
        cdef ssize_t n
        cdef char *at
        cdef list out = []
        if self.state == ST_DEAD:
            raise self.error
        at = self.reserve_read(most, &room)
        n = read(fd, at, room)
        if n < 0:
            PyErr_SetFromErrno(OSError)
        self.commit(<size_t>n)
        if n:
            self._collect(out)
        return n, out

    cdef int _feed_buffer(self, object data) except -1:
        cdef Py_buffer view
        if type(data) is bytes:
            self.append(PyBytes_AS_STRING(data), <size_t>PyBytes_GET_SIZE(data))
            return 0
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            self.append(<const char *>view.buf, <size_t>view.len)
        finally:
            PyBuffer_Release(&view)
        return 0

    # -- state machine -------------------------------------------------------

    cdef int fail(self, fc_http_error_t error, str detail=None) except -1:
        message = fc_http_error_text(error).decode("ascii")
        if detail:
            message = f"{message}: {detail}"
        self.state = ST_DEAD
        self.error = ParseError(fc_http_error_status(error), message)
        raise self.error

    cdef int _parse_head(self) except -1:
        raise NotImplementedError

    cdef int next_event(self) except -1:
        if self.state == ST_HEAD:
            if self.start == self.end:
                return EV_NEED_DATA
            return self._parse_head()
        return self._body_event()

    cdef int _body_event(self) except -1:
        cdef size_t avail, n
        cdef uint64_t size
        cdef int rc
        cdef fc_http_error_t err
        while True:
            avail = self.end - self.start
            if self.state == ST_LENGTH or self.state == ST_CHUNK_DATA:
                if avail == 0:
                    return EV_NEED_DATA
                n = avail if avail < self.remaining else <size_t>self.remaining
                self.body_at = self.buf + self.start
                self.body_len = n
                self.start += n
                self.remaining -= n
                if self.remaining == 0:
                    self.state = ST_END if self.state == ST_LENGTH else ST_CHUNK_CRLF
                return EV_BODY
            elif self.state == ST_CHUNK_SIZE:
                rc = fc_http_parse_chunk_size(self.buf + self.start, avail, self.max_chunk_line, &size, &err)
                if rc == FC_HTTP_PARTIAL:
                    return EV_NEED_DATA
                if rc == FC_HTTP_INVALID:
                    self.fail(err)
                self.start += rc
                if size == 0:
                    self.state = ST_TRAILERS
                    self.trailer_seen = 0
                    continue
                if size > self.max_body - self.body_total:
                    self.fail(FC_ERR_BODY_TOO_LARGE, f"chunked body over max_body ({self.max_body} bytes)")
                self.body_total += size
                self.remaining = size
                self.state = ST_CHUNK_DATA
            elif self.state == ST_CHUNK_CRLF:
                if avail == 0:
                    return EV_NEED_DATA
                if self.buf[self.start] != b'\r':
                    self.fail(FC_ERR_CHUNK_CRLF)
                if avail == 1:
                    return EV_NEED_DATA
                if self.buf[self.start + 1] != b'\n':
                    self.fail(FC_ERR_CHUNK_CRLF)
                self.start += 2
                self.state = ST_CHUNK_SIZE
            elif self.state == ST_TRAILERS:
                # re-parse only when a line has completed since the last try
                if avail == 0 or (self.trailer_seen and memchr(
                        self.buf + self.start + self.trailer_seen, b'\n', avail - self.trailer_seen) == NULL):
                    self.trailer_seen = avail
                    return EV_NEED_DATA
                n = self.max_headers
                rc = fc_http_parse_fields(self.buf + self.start, avail, self.limits.max_header_bytes,
                                          self.fields, &n, &err)
                if rc == FC_HTTP_PARTIAL:
                    self.trailer_seen = avail
                    return EV_NEED_DATA
                if rc == FC_HTTP_INVALID:
                    self.fail(err, "in trailers")
                self.trailers = header_list(self.fields, n) if n else None
                self.start += rc
                self.state = ST_END
            elif self.state == ST_UNTIL_CLOSE:
                if avail == 0:
                    return EV_NEED_DATA
                self.body_at = self.buf + self.start
                self.body_len = avail
                self.start = self.end
                return EV_BODY
            elif self.state == ST_END:
                self.state = ST_HEAD
                self.body_total = 0
                return EV_END
            elif self.state == ST_DEAD:
                raise self.error
            else:
                return EV_NEED_DATA

    cdef int _start_body(self, bint chunked, bint has_length, uint64_t length) except -1:
        self.trailers = None
        self.body_total = 0
        if chunked:
            self.state = ST_CHUNK_SIZE
        elif has_length and length > 0:
            if length > self.max_body:
                self.fail(FC_ERR_BODY_TOO_LARGE,
                          f"Content-Length {length} over max_body ({self.max_body} bytes)")
            self.remaining = length
            self.body_total = length
            self.state = ST_LENGTH
        else:
            self.state = ST_END
        return 0

    cdef int _collect(self, list out) except -1:
        """Runs the state machine over the buffer, appending complete messages."""
        cdef int ev
        while True:
            ev = self.next_event()
            if ev == EV_NEED_DATA:
                return 0
            if ev == EV_HEAD:
                self.pending = self._make_message()
                self.parts = None
            elif ev == EV_BODY:
                if self.parts is None:
                    self.parts = []
                self.parts.append(PyBytes_FromStringAndSize(self.body_at, self.body_len))
            elif ev == EV_END:
                self._finish_message(self.pending, self.parts, self.trailers)
                out.append(self.pending)
                self.pending = None
                self.parts = None

    cdef int _feed_and_collect(self, object data, list out) except -1:
        """feed() for both parsers. When nothing is buffered and data is
        bytes, the state machine reads the bytes object in place and only
        the unconsumed tail is copied into the buffer."""
        cdef char *own_buf
        cdef size_t own_cap, tail
        cdef const char *borrowed
        if type(data) is not bytes or self.start != self.end:
            self._feed_buffer(data)
            return self._collect(out)
        own_buf, own_cap = self.buf, self.cap
        self.buf = PyBytes_AS_STRING(data)
        self.cap = self.end = <size_t>PyBytes_GET_SIZE(data)
        self.start = 0
        try:
            self._collect(out)
        finally:
            tail = self.end - self.start
            borrowed = self.buf + self.start
            self.buf, self.cap = own_buf, own_cap
            self.start = self.end = 0
            if tail:
                self.append(borrowed, tail)
        return 0

    cdef object _make_message(self):
        raise NotImplementedError

    cdef int _finish_message(self, Message message, list parts, list trailers) except -1:
        if parts:
            message.body = parts[0] if len(parts) == 1 else b"".join(parts)
        if trailers:
            message.trailers = trailers
        return 0


cdef class Message:
    pass


cdef class Request(Message):
    """One parsed request (the Python view; the server's hot path reads spans)."""

    def __repr__(self):
        return f"<Request {self.method} {self.target} {self.version}>"


cdef class Response(Message):
    """One parsed response."""

    def __repr__(self):
        return f"<Response {self.version} {self.status} {self.reason}>"


cdef class RequestParser(Framer):
    """Frames a stream of requests: feed(bytes) -> list[Request]."""

    def feed(self, data):
        """Appends data; returns the requests it completed (maybe none).
        Raises ParseError (with .status) on bad input; the parser is then dead."""
        cdef list out = []
        if self.state == ST_DEAD:
            raise self.error
        self._feed_and_collect(data, out)
        return out

    cdef int _parse_head(self) except -1:
        cdef int rc
        cdef size_t avail = self.end - self.start
        self.head.headers = self.fields
        self.head.num_headers = self.max_headers
        rc = fc_http_parse_request(self.buf + self.start, avail, self.last_len, &self.limits, &self.head)
        if rc == FC_HTTP_PARTIAL:
            self.last_len = avail
            return EV_NEED_DATA
        if rc == FC_HTTP_INVALID:
            self.head.method.len = 0  # no head: the server's log of the refusal must not read its spans
            self.fail(self.head.error)
        self.last_len = 0
        if fc_http_request_info(&self.head, &self.info) != 0:
            self.fail(self.info.error)
        self.start += rc
        self.head_len = rc
        self._start_body(self.info.flags & FC_REQ_CHUNKED, self.info.flags & FC_REQ_HAS_LENGTH,
                         self.info.content_length)
        return EV_HEAD

    cdef void unread_head(self) noexcept:
        """Puts the head handed out by the last EV_HEAD back (no body byte
        may have been taken since): the next next_event() parses it again.
        For a request that is held before it is handled (a rate limit's delay)."""
        self.start -= self.head_len
        self.state = ST_HEAD
        self.last_len = 0
        self.remaining = 0

    cdef Request make_request(self):
        cdef Request r = Request.__new__(Request)
        cdef fc_request_head_t *h = &self.head
        cdef fc_request_info_t *info = &self.info
        cdef fc_header_t *up
        # the head spans [method, buf + start): start is just past it here
        cdef bint ascii = fc_ascii_only(h.method.at, <size_t>(self.buf + self.start - h.method.at))
        r.method = method_str(h.method.at, h.method.len)
        r.target = text(h.target.at, h.target.len, ascii)
        if info.path.at == h.target.at and info.path.len == h.target.len:
            r.path = r.target
        else:
            r.path = text(info.path.at, info.path.len, ascii)
        r.query = text(info.query.at, info.query.len, ascii) if info.query.len else ""
        r.version = "HTTP/1.1" if h.minor_version == 1 else "HTTP/1.0"
        r.headers = header_list(self.fields, h.num_headers, ascii)
        r.keep_alive = (info.flags & FC_REQ_KEEP_ALIVE) != 0
        r.expect_continue = (info.flags & FC_REQ_EXPECT_CONTINUE) != 0
        r.chunked = (info.flags & FC_REQ_CHUNKED) != 0
        r.content_length = info.content_length if info.flags & FC_REQ_HAS_LENGTH else None
        if info.flags & FC_REQ_UPGRADE:
            up = &self.fields[info.upgrade_index]
            r.upgrade = latin1(up.value.at, up.value.len)
        else:
            r.upgrade = None
        r.body = b""
        r.trailers = []
        return r

    cdef object _make_message(self):
        return self.make_request()


cdef class ResponseParser(Framer):
    """Frames a stream of responses: feed(bytes, request_method) -> list[Response].

    A response without Content-Length or chunked framing ends when the
    connection closes: call finish() at EOF to get it."""

    def feed(self, data, request_method="GET"):
        cdef list out = []
        if self.state == ST_DEAD:
            raise self.error
        self.request_was_head = request_method == "HEAD"
        self._feed_and_collect(data, out)
        return out

    def finish(self):
        """End of stream: completes a close-delimited response; raises
        ParseError (502) if the stream stops inside a framed message."""
        cdef list out = []
        if self.state == ST_DEAD:
            raise self.error
        if self.state == ST_UNTIL_CLOSE:
            self.state = ST_END
            self._collect(out)
            return out
        if self.state != ST_HEAD or self.end != self.start:
            self.state = ST_DEAD
            self.error = ParseError(502, "connection closed inside a response")
            raise self.error
        return out

    cdef int _parse_head(self) except -1:
        cdef int rc
        cdef size_t avail = self.end - self.start
        cdef unsigned flags
        self.head.headers = self.fields
        self.head.num_headers = self.max_headers
        rc = fc_http_parse_response(self.buf + self.start, avail, self.last_len, &self.limits, &self.head)
        if rc == FC_HTTP_PARTIAL:
            self.last_len = avail
            return EV_NEED_DATA
        if rc == FC_HTTP_INVALID:
            self.fail(self.head.error)
        self.last_len = 0
        if fc_http_response_info(&self.head, self.request_was_head, &self.info) != 0:
            self.fail(self.info.error)
        self.start += rc
        flags = self.info.flags
        if flags & FC_RESP_NO_BODY:
            self._start_body(False, False, 0)
        elif flags & FC_RESP_UNTIL_CLOSE:
            self.trailers = None
            self.state = ST_UNTIL_CLOSE
        else:
            self._start_body(flags & FC_RESP_CHUNKED, flags & FC_RESP_HAS_LENGTH, self.info.content_length)
        return EV_HEAD

    cdef Response make_response(self):
        cdef Response r = Response.__new__(Response)
        r.status = self.head.status
        r.reason = latin1(self.head.reason.at, self.head.reason.len)
        r.version = "HTTP/1.1" if self.head.minor_version == 1 else "HTTP/1.0"
        r.headers = header_list(self.fields, self.head.num_headers)
        r.keep_alive = (self.info.flags & FC_RESP_KEEP_ALIVE) != 0
        r.body = b""
        r.trailers = []
        return r

    cdef object _make_message(self):
        return self.make_response()
