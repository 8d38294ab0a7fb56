# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Outbound connections to the servers of a proxy pool.

Theory of operation
-------------------
    connect_to() --connected--> U_ACTIVE --release()--> U_IDLE --take()--> U_ACTIVE ...
         |                         |                      |
         '--error/timeout----------'--any failure---------'--server closes, idle timeout--> U_CLOSED

- connect_to() starts a non-blocking connect; output queued meanwhile goes
  out once the socket is writable and SO_ERROR says it connected.
- An https:// server (tls_peer set): once connected, the TLS handshake runs
  still in U_CONNECTING (so the plain path tests nothing more; `tls` set
  tells the two steps apart), within the same connect_timeout, and a
  failure of it (a refused certificate included) is a connect failure.
  Reads then go through OpenSSL until it wants the socket (it may hold
  plaintext no epoll event announces: read again when reading resumes);
  writes through the Stream's TLS path. An idle TLS connection that gets
  bytes is dead if they are a close_notify, the end, or data; records
  that carry none (a TLS 1.3 ticket) leave it idle.
- U_ACTIVE: bytes read go into the ResponseParser's buffer and the owner is
  told (upstream_readable); the owner runs the parser's events. The read
  timeout is the time allowed between two reads once armed (arm_read(), by
  the owner when its request has gone out); the send timeout the time
  between two writes that make progress (Stream).
- A connection goes back to its server's IdlePool only when the owner says
  the exchange ended cleanly (release(): whole request sent, whole framed
  response read, nothing extra buffered, the server did not say close, and
  keepalive_requests not reached). Anything else closes it: a connection
  that saw an error or an unframed message is never reused.
- U_IDLE: the pool keeps the most recently used last and hands it out first
  (LIFO: the warmest connection, and the cold ones age out through
  keepalive_idle). An idle connection is watched for reading: the server
  closing it (or sending anything unasked) closes it here, so the next
  request does not pick a dead one; the race that remains (the server
  closes as we send) is the owner's to retry.
- Every failure reaches the owner once through upstream_failed(), then the
  connection closes; close() never calls the owner.
"""
import os
import socket

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport uint32_t

from fastcore._core.includes.syscalls cimport *
from fastcore._core.loop cimport DeadlineQueue, Loop
from fastcore._core.buffer cimport OutputQueue
from fastcore._core.parser cimport ResponseParser
from fastcore._core.parser import ParseError
from fastcore._core.includes.fc_tls cimport (
    FC_TLS_DONE, FC_TLS_WANT_READ, FC_TLS_WANT_WRITE, fc_tls_client_conn_new, fc_tls_client_free,
    fc_tls_client_new, fc_tls_client_options_t, fc_tls_failure_reason, fc_tls_handshake, fc_tls_pending,
    fc_tls_read, fc_tls_session_free, fc_tls_shutdown,
)


cdef class UpstreamOwner:
    """What an UpstreamConnection reports to while it carries an exchange."""

    cdef int upstream_ready(self, UpstreamConnection up) except -1:
        return 0

    cdef int upstream_readable(self, UpstreamConnection up) except -1:
        return 0

    cdef int upstream_drained(self, UpstreamConnection up) except -1:
        return 0

    cdef int upstream_failed(self, UpstreamConnection up, UpFailure failure, str why) except -1:
        return 0


cdef class UpstreamTimeouts:
    def __cinit__(self, Loop loop, double connect, double read, double send, double idle):
        self.connect = loop.deadline_queue(connect)
        self.read = loop.deadline_queue(read)
        self.send = loop.deadline_queue(send)
        self.idle = loop.deadline_queue(idle)


cdef class TLSClient:

    def __cinit__(self, bint verify, ca_certs=None, certfile=None, keyfile=None):
        cdef fc_tls_client_options_t options
        cdef char err[1024]
        # an empty path is none (fc_tls_client_new reads it so)
        cdef bytes ca_b = (ca_certs or "").encode()
        cdef bytes cert_b = (certfile or "").encode()
        cdef bytes key_b = (keyfile or "").encode()
        options.verify = verify
        options.ca_certs = ca_b
        options.certfile = cert_b
        options.keyfile = key_b
        self.client = fc_tls_client_new(&options, err, sizeof(err))
        if self.client == NULL:
            raise ValueError(err.decode("utf-8", "replace"))

    def __dealloc__(self):
        fc_tls_client_free(self.client)


cdef class TLSPeer:

    def __cinit__(self, TLSClient client, str server_name):
        self.client = client
        self.server_name = server_name.encode("idna") if server_name else b""

    def __dealloc__(self):
        fc_tls_session_free(self.session)

    @property
    def has_session(self):
        return self.session != NULL


cdef class IdlePool:
    """The kept-alive connections of one server in one worker."""

    def __cinit__(self, size_t limit):
        self.idle = []
        self.limit = limit

    cdef UpstreamConnection take(self, bint peek):
        """The most recently used idle connection that is still clean, or None.

        With peek, a look first: the end (or bytes) waiting on an idle
        connection that the loop has not reported yet (the server closed it
        while this batch of events was being handled) would fail this
        exchange; such a connection is closed and the next one tried. Worth
        its syscall only for a request that could not be sent again: any
        other is retried after that race at no cost to the client. An idle
        connection the server wrote to or closed before this batch was seen
        by the loop already, and closed."""
        cdef UpstreamConnection up
        cdef char probe
        cdef ssize_t n
        while self.idle:
            up = <UpstreamConnection>self.idle.pop()
            if up.state != U_IDLE:
                continue
            if up.tls != NULL:
                # bytes read by OpenSSL: a peek at the socket would take a
                # ticket for the end; a read that wants more says it is open
                if not up._idle_open():
                    up.close()
                    continue
            elif peek:
                n = recv(up.fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT)
                if n >= 0 or (errno != EAGAIN and errno != EINTR):
                    up.close()
                    continue
            up.disarm()
            self.reused += 1
            return up
        return None

    cdef int put(self, UpstreamConnection up) except -1:
        cdef UpstreamConnection oldest
        if self.limit == 0:
            up.close()
            return 0
        while len(self.idle) >= self.limit:
            oldest = <UpstreamConnection>self.idle.pop(0)
            oldest.close()
        self.idle.append(up)
        return 0

    cdef int forget(self, UpstreamConnection up) except -1:
        try:
            self.idle.remove(up)
        except ValueError:
            pass
        return 0

    def __len__(self):
        return len(self.idle)

    def close_all(self):
        cdef UpstreamConnection up
        for up in list(self.idle):
            up.close()
        self.idle = []


cdef UpstreamConnection connect_to(Loop loop, object family, object sockaddr, IdlePool pool,
                                   UpstreamTimeouts timeouts, dict parser_limits, size_t read_size,
                                   unsigned long max_exchanges, TLSPeer tls_peer):
    """A new connection to sockaddr, connecting (U_CONNECTING). Raises
    OSError when no socket can be made or the connect fails at once."""
    cdef UpstreamConnection up = UpstreamConnection.__new__(UpstreamConnection)
    cdef int one = 1
    sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    try:
        err = sock.connect_ex(sockaddr)
        if err not in (0, EINPROGRESS, EAGAIN):
            raise OSError(err, os.strerror(err))
        if family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        sock.close()
        raise
    up.fd = sock.detach()
    up.loop = loop
    up.out = OutputQueue()
    up.pool = pool
    up.timeouts = timeouts
    up.send_queue = timeouts.send
    up.parser = ResponseParser(**parser_limits)
    up.read_size = read_size
    up.max_exchanges = max_exchanges
    up.tls_peer = tls_peer
    up.state = U_CONNECTING
    pool.opened += 1
    timeouts.connect.arm(up, loop.now)
    up.set_interest(EPOLLOUT)
    return up


cdef class UpstreamConnection(Stream):

    cdef int start_exchange(self, UpstreamOwner owner) except -1:
        """Hands the connection (new or taken from the pool) to an owner."""
        self.owner = owner
        self.exchanges += 1
        self.got_bytes = False
        self.request_sent = False
        if self.state == U_IDLE:
            self.state = U_ACTIVE
            self._update()
        return 0

    cdef int release(self) except -1:
        """The owner is done and the exchange ended cleanly: back to the pool
        if the connection may carry another one, else closed."""
        self.owner = None
        self.disarm()
        if (self.state != U_ACTIVE or self.eof or self.write_error is not None or self.out.pending
                or self.parser.buffered()
                or self.reading_paused or self.exchanges >= self.max_exchanges
                or (self.tls != NULL and fc_tls_pending(self.tls))):
            self.close()
            return 0
        self.state = U_IDLE
        self.request_sent = False
        self.parser.release_buffer()
        self.timeouts.idle.arm(self, self.loop.now)
        self._update()
        self.pool.put(self)
        return 0

    cdef int arm_read(self) except -1:
        """The owner has queued the whole request: once it is out, the read
        timeout runs (between two reads) until the response ends."""
        self.request_sent = True
        if self.state == U_ACTIVE:
            self._update()
        return 0

    # -- events -----------------------------------------------------------------

    cdef int _on_events(self, uint32_t events) except -1:
        if self.state == U_IDLE:
            # the server closed an idle connection, or sent what nobody asked for
            if self.tls == NULL or not self._idle_open():
                self.close()
            return 0
        if self.state == U_CONNECTING:
            if events & (EPOLLOUT | EPOLLIN | EPOLLERR | EPOLLHUP):
                self._on_connected()
            return 0
        if events & EPOLLOUT:
            self._on_writable()
        if self.fd >= 0 and events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR) and not self.reading_paused:
            self._on_readable()
        return 0

    cdef int _on_connected(self) except -1:
        cdef int err = 0
        cdef socklen_t size = sizeof(err)
        if self.tls != NULL:
            return self._handshake()  # the next step of it
        if getsockopt(self.fd, SOL_SOCKET, SO_ERROR, &err, &size) < 0:
            err = errno
        if err:
            self._fail(UF_CONNECT, f"connect: {os.strerror(err)}")
            return 0
        if self.tls_peer is not None:
            self.tls = fc_tls_client_conn_new(self.tls_peer.client.client, self.fd, self.tls_peer.server_name,
                                              &self.tls_peer.session)
            if self.tls == NULL:
                self._fail(UF_CONNECT, "TLS handshake: out of memory")
                return 0
            return self._handshake()
        return self._established()

    cdef int _handshake(self) except -1:
        """One step of the TLS handshake (connect_timeout still runs)."""
        cdef char reason[512]
        cdef int rc = fc_tls_handshake(self.tls)
        if rc == FC_TLS_DONE:
            self.tls_want_write = False
            return self._established()
        if rc == FC_TLS_WANT_READ or rc == FC_TLS_WANT_WRITE:
            self.tls_want_write = rc == FC_TLS_WANT_WRITE
            self._update()
            return 0
        fc_tls_failure_reason(self.tls, reason, sizeof(reason))
        self._fail(UF_CONNECT, "TLS handshake: " + reason.decode("utf-8", "replace"))
        return 0

    cdef int _established(self) except -1:
        """Connected (and for TLS, handshaken): the exchange may start."""
        self.disarm()
        self.state = U_ACTIVE
        if self.owner is not None:
            self.owner.upstream_ready(self)
        if self.fd >= 0:
            self._on_writable()
        return 0

    cdef int _on_writable(self) except -1:
        cdef int rc = self._write()
        if rc < 0:
            return 0
        if rc == 0 and self.producing:
            self.producing = False
            if self.owner is not None:
                self.owner.upstream_drained(self)
        if self.fd >= 0:
            self._update()
        return 0

    cdef int _on_readable(self) except -1:
        cdef char *buf
        cdef size_t room
        cdef ssize_t n
        if self.tls != NULL:
            return self._read_tls()
        buf = self.parser.reserve_read(self.read_size, &room)
        n = recv(self.fd, buf, room, 0)
        if n < 0:
            if errno == EAGAIN or errno == EINTR:
                return 0
            self._fail(UF_RESET, f"read: {os.strerror(errno)}")
            return 0
        return self._got(n)

    cdef int _got(self, ssize_t n) except -1:
        """A read's outcome (n >= 0 bytes, 0: the end), plain or TLS, told to the owner."""
        if n == 0:
            self.eof = True
            self.set_interest(EPOLLOUT if self.out.pending else 0)
        else:
            self.parser.commit(n)
            self.got_bytes = True
            if self.queue is self.timeouts.read:
                self.timeouts.read.arm(self, self.loop.now)  # read_timeout is between two reads
        if self.owner is not None:
            self.owner.upstream_readable(self)
        return 0

    cdef int _read_tls(self) except -1:
        """_on_readable through OpenSSL: reads until it wants the socket
        (what it holds past one read no event would announce), while the
        connection carries an exchange that is not paused."""
        cdef char *buf
        cdef size_t room
        cdef ssize_t n
        while self.fd >= 0 and self.state == U_ACTIVE and not self.reading_paused and not self.eof:
            buf = self.parser.reserve_read(self.read_size, &room)
            n = fc_tls_read(self.tls, buf, room)
            if n < 0:
                if errno == EAGAIN or errno == EINTR:
                    return 0
                self._fail(UF_RESET, f"TLS read: {os.strerror(errno)}")
                return 0
            self._got(n)
        return 0

    cdef int _write_failed(self, object error) except -1:
        """The server went away while the request was being written (a
        reset, or a TLS server's refusal after its side of the handshake).
        Nothing more is written; the owner hears of it after this batch,
        never from inside its own call that wrote, and only after what the
        server did send is read (an answer given before it closed still
        counts)."""
        if self.owner is None or self.state != U_ACTIVE:
            return self.close()
        self.out.clear()
        if self.write_error is None:
            self.write_error = f"write: {error.strerror or error}"
            self.loop.defer(self)
        return 0

    cdef int _on_deferred(self) except -1:
        if self.write_error is not None:
            if self.fd >= 0 and self.state == U_ACTIVE and not self.reading_paused:
                self._on_readable()  # an answer, the end, or the reason (a TLS alert)
            if self.fd >= 0 and self.owner is not None and self.state == U_ACTIVE:
                self._fail(UF_RESET, self.write_error)
            return 0
        # reading resumed while OpenSSL held plaintext (resume_reading deferred it)
        if self.tls != NULL and self.fd >= 0 and self.state == U_ACTIVE and not self.reading_paused:
            self._read_tls()
        return 0

    cdef bint _idle_open(self):
        """An idle TLS connection is still open: reading it finds neither
        the end, an error, nor data (only records without any, if at all)."""
        cdef char probe
        cdef ssize_t n = fc_tls_read(self.tls, &probe, 1)
        return n < 0 and (errno == EAGAIN or errno == EINTR)

    cdef int _on_timeout(self) except -1:
        if self.state == U_IDLE:
            self.close()  # keepalive_idle over
        elif self.state == U_CONNECTING:
            self._fail(UF_CONNECT, "connect_timeout" if self.tls == NULL else "connect_timeout (TLS handshake)")
        elif self.out.pending:
            # the loop has taken the connection out of its queue by now: the
            # timer that ran is the one of what it was doing
            self._fail(UF_TIMEOUT, "send_timeout")
        else:
            self._fail(UF_TIMEOUT, "read_timeout")
        return 0

    cdef int close(self) except -1:
        if self.tls != NULL and self.fd >= 0:
            # close_notify, if the socket takes it now: also what keeps the
            # session resumable (OpenSSL forgets one closed without it)
            fc_tls_shutdown(self.tls)
        return Stream.close(self)

    cdef int _fail(self, UpFailure failure, str why) except -1:
        cdef UpstreamOwner owner = self.owner
        self.owner = None
        self.close()
        if owner is not None:
            owner.upstream_failed(self, failure, why)
        return 0

    cdef int _update(self) except -1:
        cdef uint32_t events = 0
        if self.fd < 0:
            return 0
        if self.state == U_CONNECTING:
            events = EPOLLIN if self.tls != NULL and not self.tls_want_write else EPOLLOUT
        elif self.state == U_IDLE:
            events = EPOLLIN | EPOLLRDHUP
        else:
            if self.out.pending:
                events |= EPOLLOUT
                if self.queue is not self.timeouts.send:
                    self.timeouts.send.arm(self, self.loop.now)
            elif self.request_sent:
                # the whole request is out: the response is awaited
                if self.queue is not self.timeouts.read:
                    self.timeouts.read.arm(self, self.loop.now)
            elif self.queue is self.timeouts.send:
                self.disarm()
            if not self.reading_paused and not self.eof:
                events |= EPOLLIN | EPOLLRDHUP
        self.set_interest(events)
        return 0

    cdef int resume_reading(self) except -1:
        Stream.resume_reading(self)
        if self.tls != NULL and self.fd >= 0 and self.state == U_ACTIVE and fc_tls_pending(self.tls):
            self.loop.defer(self)  # no event will say what OpenSSL holds: read it after this batch
        return 0

    cdef int _on_closed(self) except -1:
        cdef UpState was = self.state
        self.state = U_CLOSED
        if was == U_IDLE and self.pool is not None:
            self.pool.forget(self)
        self.parser.release_buffer()
        return 0

    cdef int send_span(self, const char *at, size_t n) except -2:
        """While connecting nothing can be written: queue (copied)."""
        if self.state == U_CONNECTING:
            if self.fd >= 0 and n:
                self.out.push(PyBytes_FromStringAndSize(at, n))
            return 0
        return Stream.send_span(self, at, n)

    cdef int flush(self) except -1:
        if self.state == U_CONNECTING:
            return 0
        return Stream.flush(self)
