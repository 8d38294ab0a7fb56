# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The framing of an application's response (RFC 9112 section 6), shared by
the WSGI and the ASGI gateway.

- The application's Content-Length wins when it gives one: a body that
  comes up short closes the connection, bytes past it are dropped (both
  logged).
- Otherwise a body whose length is known when the head goes (a
  one-element WSGI list, a one-event ASGI response) gets a Content-Length;
  a streamed one is chunked for HTTP/1.1 and close-delimited for HTTP/1.0.
- HEAD, 1xx, 204 and 304 carry no body (a 304 keeps the application's
  Content-Length, as RFC 9110 15.4.5 allows).
- Connection: close when the response or the server ends the connection
  (HTTP/1.1); keep-alive when an HTTP/1.0 connection stays.
"""
import logging

from cpython.bytes cimport PyBytes_GET_SIZE

from fastcore._core.buffer cimport FileSegment
from fastcore._core.response cimport date_line

cdef object error_log = logging.getLogger("fastcore.error")

cdef bytes LAST_CHUNK = b"0\r\n\r\n"
cdef bytes EMPTY = b""


cdef class AppResponse:
    """One response of an application, as the gateways' exchanges make it
    (they inherit this)."""

    cdef int send_head(self, int64_t length) except -1:
        cdef list parts = [self.status_line]
        parts.extend(self.header_lines)
        parts.append(date_line())
        if self.server_header:
            parts.append(b"Server: fastcore\r\n")
        if self.declared >= 0:
            length = self.declared
        if self.status >= 200 and self.status != 204 and self.status != 304:
            if self.declared >= 0:
                parts.append(self.length_line)
            elif length >= 0:
                parts.append(b"Content-Length: %d\r\n" % length)
            elif self.http11:
                self.chunked = True
                parts.append(b"Transfer-Encoding: chunked\r\n")
            else:
                self.keep_alive = False  # close-delimited
        elif self.status == 304 and self.declared >= 0:
            parts.append(self.length_line)
        if not self.keep_alive or self.conn.server.draining:
            self.keep_alive = False
            if self.http11:
                parts.append(b"Connection: close\r\n")
        elif not self.http11:
            parts.append(b"Connection: keep-alive\r\n")
        parts.append(b"\r\n")
        head = EMPTY.join(parts)
        self.head_sent = True
        self.head_bytes = PyBytes_GET_SIZE(head)
        self.conn.send(head)
        return 0

    cdef int write_bytes(self, bytes data) except -1:
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
        if n == 0 or self.no_body:
            self.sent += n
            return 0
        if self.declared >= 0 and self.sent + n > self.declared:
            # more than declared: what was promised goes out, the rest is dropped
            data = data[:self.declared - self.sent]
            n = PyBytes_GET_SIZE(data)
            error_log.warning("application sent more than its Content-Length (%d) for %s", self.declared,
                              self.request_text())
            if n == 0:
                return 0
        self.sent += n
        if self.chunked:
            self.conn.send(b"%x\r\n" % n + data + b"\r\n")
        else:
            self.conn.send(data)
        return 0

    cdef int write_file(self, int fd, int64_t offset, int64_t n) except -1:
        if self.declared >= 0 and self.sent + n > self.declared:
            error_log.warning("application sent more than its Content-Length (%d) for %s", self.declared,
                              self.request_text())
            n = self.declared - self.sent
        self.sent += n
        if n == 0 or self.no_body:
            return 0
        if self.chunked:
            self.conn.send(b"%x\r\n" % n)
        self.conn.send_file(FileSegment(fd, offset, n))  # the segment holds a duplicate of fd
        if self.chunked:
            self.conn.send(b"\r\n")
        return 0

    cdef int send_whole_file(self, int fd, int64_t offset, int64_t size) except -1:
        if self.declared >= 0 and size > self.declared:
            size = self.declared
        self.send_head(size)
        self.sent = size
        if not self.no_body and size > 0:
            self.conn.send_file(FileSegment(fd, offset, size))  # the segment holds a duplicate of fd
        return 0

    cdef int end_framing(self, list trailer_lines) except -1:
        if self.chunked and not self.no_body:
            if trailer_lines:
                self.conn.send(b"0\r\n" + EMPTY.join(trailer_lines) + b"\r\n")
            else:
                self.conn.send(LAST_CHUNK)
        if self.declared >= 0 and self.sent < self.declared and not self.no_body:
            error_log.warning("application sent %d of its Content-Length %d for %s: closing the connection",
                              self.sent, self.declared, self.request_text())
            return 0
        return 1

    cdef str request_text(self):
        return "the request"
