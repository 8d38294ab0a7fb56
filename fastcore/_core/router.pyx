# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Routing a request to its location.

Theory of operation
-------------------
on_head normalises the request path once (fc_path_normalize: percent
decoding, dot segments, repeated slashes; refusing NUL, encoded slashes,
backslashes, bad UTF-8 and climbs above the root), then takes the location
whose prefix is the longest one matching whole segments: "/assets" serves
"/assets" and "/assets/app.css", never "/assetsfoo". Prefixes are tried
longest first, so the first match wins. The chosen handler is made the
connection's handler for the rest of the request.

A path that cannot be normalised is refused with 400 when its raw form is
under a location (that is what a traversal attempt looks like); otherwise
it goes to the fallback, the application, which has always seen raw paths.
Without a fallback, requests under no location get 404.
"""
from libc.stdlib cimport free, realloc
from libc.string cimport memcmp

from fastcore._core.connection cimport Connection, RequestHandler
from fastcore._core.response cimport plain_response
from fastcore._core.includes.fc_static cimport fc_path_normalize
from fastcore._core.includes.fc_http cimport FC_TARGET_ORIGIN
from fastcore._core.parser cimport RequestParser, is_head_request

cdef dict PATH_ERRORS = {
    -1: "a '%' not followed by two hex digits in the path",
    -2: "a NUL byte in the path",
    -3: "an encoded '/' (%2F) in the path",
    -4: "a backslash in the path",
    -5: "the path is not valid UTF-8",
    -6: "the path climbs above the root",
    -7: "the path is not absolute",
    -8: "a control character in the path",
}


cdef class NotFound(RequestHandler):
    """Requests under no location when there is no application."""

    cdef int on_head(self, Connection conn) except -1:
        cdef RequestParser p = conn.parser
        # the method is read here, while the head's spans are valid: on_end may
        # come after a body has moved the buffer
        conn.exchange = is_head_request(p)
        return 0

    cdef int on_end(self, Connection conn) except -1:
        cdef bint keep = conn.may_keep_alive()
        cdef bint is_head = conn.exchange is True
        response = plain_response(404, "", keep, is_head)
        conn.send(response)
        if conn.server.stats is not None:
            conn.server.stats.record_response(404, len(response), 0.0)
        conn.end_response(keep)
        return 0


cdef class Router(RequestHandler):

    def __init__(self, RequestHandler fallback=None):
        """fallback: the handler of requests under no location (None: 404)."""
        self.prefixes = []
        self.handlers = []
        self.fallback = fallback if fallback is not None else NotFound()

    def add(self, str prefix, RequestHandler handler):
        """Routes requests under prefix ("/" or "/a/b", no trailing '/') to handler."""
        cdef bytes raw = b"" if prefix == "/" else prefix.encode("utf-8")
        cdef Py_ssize_t i = 0
        while i < len(self.prefixes) and len(<bytes>self.prefixes[i]) >= len(raw):
            i += 1  # longest first, so the first match is the longest
        self.prefixes.insert(i, raw)
        self.handlers.insert(i, handler)

    def __dealloc__(self):
        free(self.path)

    cdef RequestHandler match(self, const char *at, size_t n):
        cdef Py_ssize_t i
        cdef bytes prefix
        cdef size_t m
        for i in range(len(self.prefixes)):
            prefix = <bytes>self.prefixes[i]
            m = len(prefix)
            if m <= n and memcmp(at, <const char *>prefix, m) == 0 and (m == n or at[m] == c'/'):
                self.match_len = m
                return <RequestHandler>self.handlers[i]
        return None

    cdef int on_head(self, Connection conn) except -1:
        cdef RequestParser p = conn.parser
        cdef const char *raw = p.info.path.at
        cdef size_t raw_len = p.info.path.len
        cdef long n
        cdef RequestHandler handler
        if raw_len + 1 > self.capacity:
            self.path = <char *>realloc(self.path, raw_len + 64)
            if self.path == NULL:
                self.capacity = 0
                raise MemoryError()
            self.capacity = raw_len + 64
        n = fc_path_normalize(raw, raw_len, self.path) if raw_len else -7
        if n < 0:
            self.path_error = <int>n
            self.path_len = 0
            if self.match(raw, raw_len) is not None:
                conn.send_error(400, PATH_ERRORS.get(n, "bad path"), is_head_request(p))
                return 0
            handler = self.fallback
        else:
            self.path_error = 0
            self.path_len = <size_t>n
            handler = self.match(self.path, self.path_len)
            if handler is None:
                handler = self.fallback
        conn.handler = handler
        handler.on_head(conn)
        return 0


cdef class HttpsRedirect(RequestHandler):
    """Every request of a plain listener when https_redirect is on: 301 to
    the same host and target over https (the TLS listener's port unless it
    is 443). A request without a Host field cannot be redirected: 400."""

    def __init__(self, int https_port):
        self.port_suffix = b"" if https_port == 443 else f":{https_port}".encode()

    cdef int on_head(self, Connection conn) except -1:
        cdef RequestParser p = conn.parser
        cdef const char *host
        cdef size_t n, i
        if p.info.host_index < 0 or p.fields[p.info.host_index].value.len == 0:
            conn.send_error(400, "a Host field is needed to redirect to https://", is_head_request(p))
            return 0
        host = p.fields[p.info.host_index].value.at
        n = p.fields[p.info.host_index].value.len
        # the host without its port (an IPv6 literal keeps its brackets)
        i = n
        while i > 0 and host[i - 1] != c':' and host[i - 1] != c']':
            i -= 1
        if i > 0 and host[i - 1] == c':':
            n = i - 1
        location = (b"https://" + host[:n] + self.port_suffix +
                    (p.head.target.at[:p.head.target.len] if p.info.target_form == FC_TARGET_ORIGIN
                     else p.info.path.at[:p.info.path.len]))
        conn.exchange = (location, is_head_request(p))
        return 0

    cdef int on_end(self, Connection conn) except -1:
        cdef bint keep = conn.may_keep_alive()
        location, is_head = conn.exchange
        response = plain_response(301, "", keep, is_head, b"Location: " + location + b"\r\n")
        conn.send(response)
        if conn.server.stats is not None:
            conn.server.stats.record_response(301, len(response), 0.0)
        conn.end_response(keep)
        return 0
