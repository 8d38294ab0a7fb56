# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""A connected socket on the loop with an output queue: the write path, the
send timeout, backpressure flags and close-once, shared by the client side
(Connection) and the upstream side of a proxied request.

Theory of operation
-------------------
- send() and send_file() queue; flush() writes what the socket takes now,
  and the subclass calls _write() again on EPOLLOUT. send_span() is for
  bytes in a buffer the caller reuses (a body read from the other side of a
  proxied exchange): written straight from there when nothing is queued
  before them, copied into the queue only for what the socket did not take,
  so a reader as fast as the writer costs no Python object per chunk.
- send_timeout is the time allowed between two writes that make progress,
  not for a whole response: every write that moves bytes restarts it.
- Backpressure, one rule in both directions: when the far side's queue
  passes the high-water mark, the owner pauses this side's reading
  (pause_reading); when the far side drains it resumes (resume_reading).
  wait_writable() asks to be told (the subclass's way) once the queue is empty.
- A bandwidth limit (limit_response: `after` bytes at full speed, then
  `rate` bytes a second) is a token bucket that refills continuously and
  holds at most one second of the rate; it starts with TOKEN_WAIT's worth,
  so a small response under a limit leaves at once. The write path tests one flag,
  `throttled`; behind it each write is capped to the tokens there are
  (sendfile and writev alike). Out of tokens, the stream neither writes nor
  watches EPOLLOUT: a loop timer brings it back (_on_writable) once
  TOKEN_WAIT seconds' worth, or all that is pending, can go. A proxied
  response stays within write_buffer_high meanwhile: the usual
  backpressure pauses the upstream's reading while the queue is full.
- close() runs once: it leaves the deadline queue and epoll, closes the
  descriptor, drops queued output, then calls _on_closed(), the one place
  a subclass releases what it holds and tells its owner. After it fd is -1
  and every send is ignored.
"""
import os

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport SIZE_MAX
from posix.unistd cimport close as close_fd

from fastcore._core.includes.syscalls cimport *
from fastcore._core.buffer cimport FileSegment, OutputQueue
from fastcore._core.includes.fc_tls cimport fc_tls_conn_free

# a throttled stream waits until this much time's worth of tokens is there
# (or all that is pending): at most 20 wake-ups a second, each one write of
# a twentieth of the rate, against a write per millisecond of a few bytes
DEF TOKEN_WAIT = 0.05


cdef class Stream(TimedHandle):

    def __dealloc__(self):
        if self.tls != NULL:  # never closed (a connection dropped while set up)
            fc_tls_conn_free(self.tls)

    cdef int _write(self) except -2:
        """Writes what the socket takes now: 0 when the queue is empty, 1
        when output remains, -1 when the peer is gone (_write_failed)."""
        cdef int rc
        if self.throttled:
            return self._write_limited()
        try:
            if self.tls == NULL:
                rc = self.out.flush(self.fd, SIZE_MAX)
            else:
                rc = self.out.flush_tls(self.tls, SIZE_MAX)
        except ConnectionError as error:
            self._write_failed(error)
            return -1
        if self.out.written and self.out.pending and self.send_queue is not None and self.queue is self.send_queue:
            self.send_queue.arm(self, self.loop.now)
        return rc

    cdef int _write_limited(self) except -2:
        """_write under a bandwidth limit: at most limit_after bytes, then at
        most the tokens there are; with too few, a timer for when there are
        enough (and 1: output remains)."""
        cdef int rc
        cdef size_t budget
        cdef double now, wanted
        cdef bint full_speed = self.limit_after > 0
        if self.token_timer is not None:
            return 1  # waiting for tokens: the timer writes
        if full_speed:
            budget = self.limit_after
        else:
            now = self.loop.now
            self.tokens = min(self.tokens + (now - self.tokens_at) * self.limit_rate, self.limit_rate)
            self.tokens_at = now
            wanted = min(<double>self.out.pending, self.limit_rate * TOKEN_WAIT)
            if wanted < 1:
                wanted = 1
            if self.tokens < wanted:
                self._wait_tokens(wanted)
                return 1
            budget = <size_t>self.tokens
        try:
            if self.tls == NULL:
                rc = self.out.flush(self.fd, budget)
            else:
                rc = self.out.flush_tls(self.tls, budget)
        except ConnectionError as error:
            self._write_failed(error)
            return -1
        if self.out.written and self.out.pending and self.send_queue is not None and self.queue is self.send_queue:
            self.send_queue.arm(self, self.loop.now)
        if full_speed:
            # (a TLS record begun before may go whole, a little past the allowance)
            self.limit_after -= min(self.out.written, self.limit_after)
            if self.limit_after == 0:
                self.tokens_at = self.loop.now  # the limit starts now: tokens accrue from here
        else:
            self.tokens -= self.out.written
        if rc and self.out.written == budget:
            # the allowance is spent (not the socket full): wait for tokens
            return self._write_limited()
        return rc

    cdef int _wait_tokens(self, double wanted) except -1:
        self.token_timer = self.loop.call_later((wanted - self.tokens) / self.limit_rate, self._tokens_back)
        return 0

    def _tokens_back(self):
        self.token_timer = None
        if self.fd >= 0:
            self._on_writable()

    cdef int limit_response(self, double rate, size_t after) except -1:
        """Limits the bandwidth of what is sent from now on (the response
        about to start): `after` bytes at full speed, then at most `rate`
        bytes a second. rate 0: no limit (output waiting for tokens goes
        out at full speed)."""
        if rate > 0:
            self.throttled = True
            self.limit_rate = rate
            self.limit_after = after
            # a first TOKEN_WAIT's worth: a response smaller than that (a
            # page, an API answer) goes at once, with no timer
            self.tokens = rate * TOKEN_WAIT
            self.tokens_at = self.loop.now
        elif self.throttled:
            self.throttled = False
            if self.token_timer is not None:
                self.token_timer.cancel()
                self.token_timer = None
                if self.fd >= 0:
                    self._update()
        return 0

    cdef int _on_writable(self) except -1:
        return self.flush()

    cdef int _write_failed(self, object error) except -1:
        """A write found the peer gone: closed here. A subclass may instead
        keep the descriptor and report it later (UpstreamConnection)."""
        return self.close()

    cdef int send(self, bytes data) except -1:
        """Queues data; it goes out at the next flush()."""
        if self.fd >= 0:
            self.out.push(data)
        return 0

    cdef int send_file(self, FileSegment segment) except -1:
        if self.fd >= 0:
            self.out.push_file(segment)
        return 0

    cdef int send_span(self, const char *at, size_t n) except -2:
        """Sends n bytes the caller's buffer holds only until it returns:
        written at once when nothing is queued before them, and only the
        part the socket did not take is copied into the queue. -1 if the
        peer is gone (the stream is closed then)."""
        cdef ssize_t sent
        if self.fd < 0:
            return -1
        if self.throttled or self.tls != NULL:
            # through the queue, where the limit counts what goes out (and
            # where TLS records are made)
            self.out.push(PyBytes_FromStringAndSize(at, n))
            self.flush()
            return 0 if self.fd >= 0 else -1
        if not self.out.pending:
            sent = send(self.fd, at, n, MSG_NOSIGNAL)
            if sent < 0:
                if errno != EAGAIN and errno != EINTR:
                    self._write_failed(ConnectionError(errno, os.strerror(errno)))
                    return 0 if self.fd >= 0 else -1
                sent = 0
            elif sent > 0 and self.send_queue is not None and self.queue is self.send_queue:
                self.send_queue.arm(self, self.loop.now)
            at += sent
            n -= <size_t>sent
        if n:
            self.out.push(PyBytes_FromStringAndSize(at, n))
            self._update()
        return 0

    cdef int flush(self) except -1:
        """Writes what the socket takes now; the rest waits for EPOLLOUT."""
        if self.fd < 0 or not self.out.pending:
            return 0
        if self._write() < 0:
            return 0
        self._update()
        return 0

    cdef int pause_reading(self) except -1:
        if not self.reading_paused:
            self.reading_paused = True
            if self.fd >= 0:
                self._update()
        return 0

    cdef int resume_reading(self) except -1:
        if self.reading_paused:
            self.reading_paused = False
            if self.fd >= 0:
                self._update()
        return 0

    cdef int wait_writable(self) except -1:
        self.producing = True
        return 0

    cdef int close(self) except -1:
        if self.fd < 0:
            return 0
        self.disarm()
        self.unregister()
        if self.token_timer is not None:
            self.token_timer.cancel()
            self.token_timer = None
        if self.tls != NULL:
            fc_tls_conn_free(self.tls)
            self.tls = NULL
        close_fd(self.fd)
        self.fd = -1
        self.out.clear()
        self.producing = False
        self._on_closed()
        return 0

    cdef int _update(self) except -1:
        return 0

    cdef int _on_closed(self) except -1:
        return 0
