# Interface of fastcore._core.parser: incremental HTTP/1.1 framing over
# src_c/fc_http. The framer owns its input buffer (malloc'd, grown up to the
# limits, freed when empty); spans in `head`/`info` point into it and stay
# valid until the next reserve(), reserve_read() or feed(). reserve_read()
# decides how much a connection reads: little while a head is arriving, the
# caller's read size in a body. Nothing here blocks; only the Python-level
# read_from() does I/O (for tests and tools, never on the server's path).
from libc.stdint cimport uint64_t
from libc.string cimport memcmp
from fastcore._core.includes.fc_http cimport (
    fc_header_t, fc_http_error_t, fc_http_limits_t, fc_request_head_t,
    fc_request_info_t, fc_response_head_t, fc_response_info_t,
)

cdef enum Event:
    EV_NEED_DATA = 0   # nothing more until more bytes arrive
    EV_HEAD = 1        # a head was parsed: `head`/`info` are filled
    EV_BODY = 2        # body bytes at body_at/body_len (a span into the buffer)
    EV_END = 3         # the message is complete (trailers, if any, parsed)

cdef enum State:
    ST_HEAD
    ST_LENGTH
    ST_CHUNK_SIZE
    ST_CHUNK_DATA
    ST_CHUNK_CRLF
    ST_TRAILERS
    ST_UNTIL_CLOSE
    ST_END
    ST_DEAD


cdef class FieldArray:
    """Room for parsed header spans. A worker's connections share one: the
    spans are read by the handler right after the head is parsed, on the
    same thread, before any other connection parses (idle connections then
    hold no header array)."""
    cdef fc_header_t *fields
    cdef size_t capacity


cdef class Framer:
    cdef FieldArray field_array
    cdef char *buf
    cdef size_t cap
    cdef size_t start
    cdef size_t end
    cdef size_t last_len
    cdef State state
    cdef uint64_t remaining
    cdef uint64_t body_total
    cdef uint64_t max_body
    cdef size_t max_headers
    cdef size_t max_chunk_line
    cdef fc_http_limits_t limits
    cdef fc_header_t *fields
    cdef const char *body_at
    cdef size_t body_len
    cdef list trailers
    cdef object error
    cdef object pending        # the message being assembled by feed()
    cdef list parts            # its body pieces
    cdef size_t trailer_seen   # bytes of trailer section already scanned

    cdef char *reserve(self, size_t n) except NULL
    cdef char *reserve_read(self, size_t most, size_t *room) except NULL
    cdef void commit(self, size_t n) noexcept
    cdef int append(self, const char *data, size_t n) except -1
    cdef void release_buffer(self) noexcept
    cdef size_t buffered(self) noexcept
    cdef int next_event(self) except -1
    cdef int _parse_head(self) except -1
    cdef int _body_event(self) except -1
    cdef int fail(self, fc_http_error_t error, str detail=*) except -1
    cdef int _feed_buffer(self, object data) except -1
    cdef int _start_body(self, bint chunked, bint has_length, uint64_t length) except -1
    cdef int _collect(self, list out) except -1
    cdef int _feed_and_collect(self, object data, list out) except -1
    cdef object _make_message(self)
    cdef int _finish_message(self, Message message, list parts, list trailers) except -1


cdef class RequestParser(Framer):
    cdef fc_request_head_t head
    cdef fc_request_info_t info
    cdef size_t head_len           # bytes of the last head parsed (for unread_head)

    cdef void unread_head(self) noexcept   # right after EV_HEAD: the head is parsed again next
    cdef Request make_request(self)


cdef class ResponseParser(Framer):
    cdef fc_response_head_t head
    cdef fc_response_info_t info
    cdef bint request_was_head
    cdef Response make_response(self)


cdef class Message:
    """What requests and responses have in common (the Python view)."""
    cdef readonly str version
    cdef readonly list headers
    cdef readonly bytes body
    cdef readonly bint keep_alive
    cdef readonly list trailers


cdef class Request(Message):
    cdef readonly str method
    cdef readonly str target
    cdef readonly str path
    cdef readonly str query
    cdef readonly bint expect_continue
    cdef readonly object upgrade
    cdef readonly object content_length
    cdef readonly bint chunked


cdef class Response(Message):
    cdef readonly int status
    cdef readonly str reason


cdef str latin1(const char *at, size_t n)
cdef str text(const char *at, size_t n, bint ascii)
cdef bint ascii_only(const char *at, size_t n) noexcept
cdef str method_str(const char *at, size_t n)
cdef list header_list(fc_header_t *fields, size_t n, bint ascii=*)


cdef inline bint is_head_request(RequestParser p) noexcept:
    """The parsed request's method is HEAD (valid while the head's spans are)."""
    return p.head.method.len == 4 and memcmp(p.head.method.at, b"HEAD", 4) == 0
