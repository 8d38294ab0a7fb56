# Interface of fastcore._core.framing: the framing of a response an
# application makes, which the WSGI gateway (start_response and the
# iterable) and the ASGI gateway (http.response.* events) share. Each
# gateway's exchange is an AppResponse: it fills the status, the checked
# header lines and the application's Content-Length, then sends the head
# once, the body's bytes, and ends the framing; the rules of what goes on
# the wire are here, once.
from libc.stdint cimport int64_t

from fastcore._core.connection cimport Connection


cdef class AppResponse:
    cdef Connection conn
    cdef bint server_header          # add "Server: fastcore" (the gateway's setting)
    cdef bint is_head
    cdef bint http11
    cdef bint keep_alive             # the connection may stay open after this response
    cdef bint started                # the status and headers came
    cdef bint head_sent
    cdef bint chunked                # the body goes out chunked
    cdef bint no_body                # HEAD, 1xx, 204, 304
    cdef int status
    cdef bytes status_line           # encoded, with the protocol version
    cdef list header_lines           # encoded, checked header lines, Content-Length and hop-by-hop left out
    cdef int64_t declared            # the application's Content-Length, -1 if none
    cdef bytes length_line           # its header line, as checked and encoded
    cdef int64_t sent                # body bytes sent (or counted, when there is no body)
    cdef Py_ssize_t head_bytes       # size of the head sent

    # the head: length is the body's when known (-1 if not, or when it must
    # be chunked); Content-Length, chunked or close-delimited, Connection
    cdef int send_head(self, int64_t length) except -1
    # body bytes (the head is sent): chunk-framed, clipped to Content-Length
    cdef int write_bytes(self, bytes data) except -1
    # n bytes of file fd from offset as body bytes (the head is sent): sendfile,
    # chunk-framed, clipped to Content-Length
    cdef int write_file(self, int fd, int64_t offset, int64_t n) except -1
    # the whole body is size bytes of fd from offset: the head with its
    # length (or the application's Content-Length, the file clipped to it),
    # then the bytes with sendfile; the framing is complete
    cdef int send_whole_file(self, int fd, int64_t offset, int64_t size) except -1
    # the end of the body (the last chunk, with trailer_lines if any);
    # returns 0 when the body came up short of its Content-Length (the
    # connection must close), 1 otherwise
    cdef int end_framing(self, list trailer_lines) except -1
    # "METHOD target" of the request, for the error log
    cdef str request_text(self)
