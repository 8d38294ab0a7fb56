# Interface of fastcore._core.stream: a connected socket on the loop with an
# output queue, the base of both kinds of connection (the client side,
# connection.Connection, and the upstream side, upstream.UpstreamConnection).
#
# Ownership: a Stream owns its descriptor from the moment fd is set until
# close(), which runs once and is the only place the descriptor is closed.
# Subclasses implement _update() (what epoll watches, from their state) and
# _on_closed() (release what they hold, tell whoever depends on them); both
# may raise; and _on_writable(), which the bandwidth limit's timer calls when
# tokens are back (a subclass's _update() must not watch EPOLLOUT while
# token_timer is set). Nothing here reads: reading is the subclass's state machine.
from fastcore._core.loop cimport DeadlineQueue, TimedHandle
from fastcore._core.buffer cimport FileSegment, OutputQueue
from fastcore._core.includes.fc_tls cimport fc_tls_conn_t


cdef class Stream(TimedHandle):
    cdef OutputQueue out
    # the TLS session of a connection accepted on a TLS listener, NULL for a
    # plain one: the one pointer the read and write paths test. Owned here,
    # freed by close() (which the subclass's TLS setup never outlives)
    cdef fc_tls_conn_t *tls
    cdef DeadlineQueue send_queue   # the send timeout of this kind of stream (set by the owner)
    cdef bint reading_paused        # pause_reading(): no EPOLLIN until resume_reading()
    cdef bint producing             # wait_writable(): the owner is told when the queue has drained
    # a bandwidth limit (limit_response): the one flag the write path tests,
    # and the token bucket behind it
    cdef bint throttled             # a limit applies: writes go through _write_limited
    cdef double limit_rate          # bytes a second, once limit_after is spent
    cdef size_t limit_after         # bytes still allowed at full speed
    cdef double tokens              # bytes the limit allows now (at most one second's worth)
    cdef double tokens_at           # loop clock when tokens was counted
    cdef object token_timer         # the loop's Timer while output waits for tokens, else None

    cdef int _write(self) except -2           # 0 queue empty, 1 output remains, -1 peer gone (closed)
    cdef int _write_limited(self) except -2
    cdef int _wait_tokens(self, double wanted) except -1
    cdef int limit_response(self, double rate, size_t after) except -1
    cdef int _on_writable(self) except -1
    cdef int send(self, bytes data) except -1
    cdef int send_file(self, FileSegment segment) except -1
    cdef int send_span(self, const char *at, size_t n) except -2   # -1: peer gone (closed)
    cdef int flush(self) except -1
    cdef int pause_reading(self) except -1
    cdef int resume_reading(self) except -1
    cdef int wait_writable(self) except -1
    cdef int close(self) except -1
    cdef int _write_failed(self, object error) except -1   # a write found the peer gone (default: close)
    cdef int _update(self) except -1
    cdef int _on_closed(self) except -1
