# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Server-side HTTP/1.1 connections on the loop.

Theory of operation
-------------------
A Connection moves through these states (connection.pxd):

    S_HEAD --head--> S_BODY --end--> S_APP --end_response(keep)--> S_HEAD | S_IDLE
       |                |              '----end_response(close)--> S_CLOSING -> S_LINGER -> closed
       '---no body, end------------------^
    S_IDLE --bytes arrive--> S_HEAD

- Bytes are read straight into the parser's buffer; the parser hands out
  events (head, body spans, end) that go to the RequestHandler. The request
  body is read completely before the handler's on_end(): a slow uploader
  never holds the application.
- In S_APP the connection reads nothing: a pipelined request waits in the
  buffer until the response before it has been handed over, which keeps
  responses in request order.
- Output goes to an OutputQueue; reading (and pipelined parsing) stops while
  the queue is above the high-water mark, and a handler that produces a
  large response waits (producing = True) until the queue drains.
- Exactly one timeout runs at a time: send while output is pending, else the
  one of the state (header, body, keep-alive idle, linger). A handler
  running the application has none: the arbiter's worker timeout owns that.
- Idle keep-alive connections hold no read buffer.
- Every path to the end goes through close(), which tells the handler (so
  the response iterable's close() runs) and closes the descriptor once.
- A request the server refuses by itself (a bad or slow head or body, a
  handler's refusal, the server's own failure) ends in send_error, the one
  place that accounts it: stats, an access log line, its reason in the
  error log. Nothing of this runs for a request that is answered.
"""
import logging
import os

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport uint32_t
from libc.string cimport memcpy
from posix.fcntl cimport O_CLOEXEC, O_RDONLY, open as open_fd
from posix.unistd cimport close as close_fd, write

from fastcore._core.includes.syscalls cimport *
from fastcore._core.loop cimport DeadlineQueue, Handle, Loop, TimedHandle
from fastcore._core.parser cimport (
    EV_BODY, EV_END, EV_HEAD, EV_NEED_DATA, ST_DEAD, FieldArray, RequestParser, latin1, method_str,
)
from fastcore._core.includes.fc_http cimport FC_REQ_KEEP_ALIVE
from fastcore._core.response cimport date_line, plain_response
from fastcore._core.buffer cimport FileSegment, OutputQueue
from fastcore._core.stream cimport Stream
from fastcore._core.realip cimport ClientResolver, address_of, address_text
from fastcore._core.includes.fc_limits cimport fc_limit_release
from fastcore._core.includes.fc_tls cimport (
    FC_TLS_DONE, FC_TLS_PLAINTEXT, FC_TLS_WANT_READ, FC_TLS_WANT_WRITE, fc_tls_conn_free, fc_tls_handshake,
    fc_tls_pending, fc_tls_read, fc_tls_shutdown,
)
from fastcore._core.tls cimport TLSContext, session_environ, session_scope
from fastcore._core.parser import ParseError

cdef object error_log = logging.getLogger("fastcore.error")

cdef int ACCEPT_BATCH = 64

# the handler call of each parser event, for the log when one raises
cdef dict EVENT_NAMES = {EV_HEAD: "on_head", EV_BODY: "on_body", EV_END: "on_end"}

# errors that mean "short of something", answered 503 rather than 500
cdef frozenset RESOURCE_ERRNOS = frozenset([EMFILE, ENFILE, ENOMEM, ENOBUFS, ENOSPC, EDQUOT])

# what a tunnel reads from its client at a time (one buffer: the loop is one thread)
DEF TUNNEL_READ = 65536
cdef char tunnel_buffer[TUNNEL_READ]


cdef class RequestHandler:
    """What a Connection calls; the WSGI gateway, the static-file locations
    and the router (and later the proxy) implement it. The server's handler
    gets on_head; it may hand the request to another handler by setting
    conn.handler before passing on_head on, and that one gets the rest of
    the request's calls (on_body, on_end, on_writable, on_close)."""

    cdef int on_head(self, Connection conn) except -1:
        return 0

    cdef int on_body(self, Connection conn, const char *at, size_t n) except -1:
        return 0

    cdef int on_end(self, Connection conn) except -1:
        conn.send_error(404, "no handler")
        return 0

    cdef int on_writable(self, Connection conn) except -1:
        return 0

    cdef int on_close(self, Connection conn) except -1:
        return 0

    cdef tuple refused_request(self, Connection conn):
        """(method, target, version) of the request being refused once its
        head's spans are gone (in its body), for the logs; None if unknown."""
        return None

    cdef int on_tunnel_data(self, Connection conn, const char *at, size_t n) except -1:
        """Bytes from the client of a tunnel (after start_tunnel); the span
        is valid during the call only."""
        return 0


cdef class Server:
    """Connections of one worker: limits, timeouts, listeners, counters."""

    def __cinit__(self, Loop loop, RequestHandler handler, config):
        self.loop = loop
        self.handler = handler
        self.config = config
        self.header_queue = loop.deadline_queue(config.header_timeout)
        self.body_queue = loop.deadline_queue(config.body_timeout)
        self.keepalive_queue = loop.deadline_queue(config.keepalive_timeout)
        self.send_queue = loop.deadline_queue(config.send_timeout)
        self.linger_queue = loop.deadline_queue(config.linger_timeout)
        self.tunnel_queue = loop.deadline_queue(config.tunnel_idle_timeout)
        self.max_connections = config.max_connections
        self.read_size = config.read_buffer_size
        self.high_water = config.write_buffer_high
        self.min_body_rate = config.min_body_rate
        self.body_rate_grace = config.min_body_rate_grace
        self.parser_limits = dict(
            max_body=config.max_body, max_request_line=config.max_request_line,
            max_header_bytes=config.max_header_bytes, max_headers=config.max_headers,
            max_chunk_line=config.max_chunk_line,
            shared_fields=FieldArray(config.max_headers),
        )
        self.accept_backoff = config.accept_backoff
        self.refusal_log_rate = config.refusal_log_rate
        if config.forwarded_allow_ips:
            self.resolver = ClientResolver(config.forwarded_allow_ips, config.real_ip_header)
        self.listeners = []
        self.live = set()
        self.accepting = True
        self.spare_fd = -1
        self.reserve_spare()

    cdef bint may_log_refusal(self, double now) except -1:
        """Whether the reason of one more refusal goes to the error log:
        refusal_log_rate lines a second at most; the first refusal of a new
        second first says how many the last ones left out."""
        if now - self.refusal_second >= 1.0:
            if self.refusals_unlogged:
                error_log.info("refused %d more requests in the last second(s) without a line each "
                               "(refusal_log_rate %d; the access log and /metrics have them)",
                               self.refusals_unlogged, self.refusal_log_rate)
                self.refusals_unlogged = 0
            self.refusal_second = now
            self.refusal_lines = 0
        if self.refusal_lines < self.refusal_log_rate:
            self.refusal_lines += 1
            return True
        self.refusals_unlogged += 1
        return False

    def __dealloc__(self):
        if self.spare_fd >= 0:
            close_fd(self.spare_fd)

    cdef int reserve_spare(self) except -1:
        """Keeps one descriptor in reserve: out of descriptors, it is what
        lets the worker still accept a client to tell it 503."""
        if self.spare_fd < 0:
            self.spare_fd = open_fd(b"/dev/null", O_RDONLY | O_CLOEXEC)
        return 0

    cdef int out_of_descriptors(self, Listener listener, str reason) except -1:
        """accept() failed for lack of descriptors (or memory): answer the
        clients already waiting with 503, stop accepting for accept_backoff
        seconds (other workers take the new ones), and say so in the stats
        until a connection is accepted again."""
        # the state first: a client told 503 may ask /health at once
        if self.stats is not None:
            self.stats.s.overloaded = 1
        if not self.overloaded:
            error_log.error("accept: %s: answering waiting clients 503 and pausing accept for %s s "
                            "(accept_backoff)", reason, self.accept_backoff)
        self.overloaded = True
        listener.refuse_waiting()
        self.pause_accepting()
        self.loop.call_later(self.accept_backoff, self.resume_accepting_later)
        return 0

    def listen(self, sock, dict environ, bint exclusive=False, TLSContext tls=None, RequestHandler handler=None):
        """Serves connections accepted on this listening socket (non-blocking).
        exclusive: other worker processes wait on the same socket; with
        EPOLLEXCLUSIVE a new connection wakes one of them, not all. tls: the
        certificates of a TLS listener (None: plain). handler: what this
        listener's requests go to instead of the server's (a plain listener
        redirecting to HTTPS)."""
        cdef Listener listener = Listener.__new__(Listener)
        listener.tls_context = tls
        listener.handler = handler if handler is not None else self.handler
        listener.events = EPOLLIN | (EPOLLEXCLUSIVE if exclusive else 0)
        sock.setblocking(False)
        listener.server = self
        listener.sock = sock
        listener.fd = sock.fileno()
        listener.loop = self.loop
        listener.is_unix = sock.family == AF_UNIX
        listener.environ = environ
        self.listeners.append(listener)
        if self.accepting:
            listener.set_interest(listener.events)
        return listener

    def set_stats(self, WorkerStats stats):
        self.stats = stats

    cdef int add_connection(self, int fd, Listener listener, sockaddr_storage *addr,
                            socklen_t addr_len) except -1:
        cdef Connection conn = Connection.__new__(Connection)
        cdef int one = 1
        if not listener.is_unix:
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one))
        conn.fd = fd
        conn.loop = self.loop
        conn.server = self
        conn.listener = listener
        memcpy(&conn.peer, addr, addr_len)
        conn.peer_len = addr_len
        address_of(addr, conn.peer_addr)
        memcpy(conn.client_addr, conn.peer_addr, 16)
        # a unix socket's peer is local: trusted as a proxy (if anyone is)
        conn.peer_trusted = self.resolver is not None and (listener.is_unix or self.resolver.trusts(conn.peer_addr))
        conn.parser = RequestParser(**self.parser_limits)
        conn.out = OutputQueue()
        conn.send_queue = self.send_queue
        conn.handler = listener.handler
        conn.state = S_HEAD
        if listener.tls_context is not None:
            conn.tls = listener.tls_context.new_connection(fd)
            if conn.tls == NULL:
                close_fd(fd)
                raise MemoryError("no memory for a TLS session")
            conn.state = S_HANDSHAKE  # the handshake runs under header_timeout, armed below
        self.connections += 1
        self.live.add(conn)
        if self.overloaded:
            self.overloaded = False
            if self.stats is not None:
                self.stats.s.overloaded = 0
            error_log.info("accepting again: descriptors are available")
        if self.stats is not None:
            self.stats.s.connections_open += 1
            self.stats.s.connections_total += 1
        self.header_queue.arm(conn, self.loop.now)
        conn.set_interest(EPOLLIN | EPOLLRDHUP)
        return 0

    def connection_states(self):
        """{state name: count}, for /status and tests."""
        cdef Connection conn
        names = {S_HEAD: "head", S_BODY: "body", S_APP: "app", S_IDLE: "idle", S_CLOSING: "closing",
                 S_LINGER: "linger", S_TUNNEL: "tunnel", S_HELD: "held", S_HANDSHAKE: "handshake", S_CLOSED: "closed"}
        out = {}
        for conn in self.live:
            key = names[conn.state]
            out[key] = out.get(key, 0) + 1
        return out

    cdef int connection_closed(self, Connection conn) except -1:
        self.connections -= 1
        if self.stats is not None:
            self.stats.s.connections_open -= 1
        self.live.discard(conn)
        if not self.accepting and not self.draining and not self.saturated and \
                self.connections < self.max_connections:
            self.resume_accepting()
        return 0

    cdef int pause_accepting(self) except -1:
        cdef Listener listener
        self.accepting = False
        for listener in self.listeners:
            listener.unregister()
        return 0

    cdef int resume_accepting(self) except -1:
        cdef Listener listener
        self.accepting = True
        for listener in self.listeners:
            listener.set_interest(listener.events)
        return 0

    def drain(self, double idle_grace=0):
        """Graceful stop, first step: stop accepting (after taking what is
        already queued: with EPOLLEXCLUSIVE the wake-up for it may have come
        to this worker); busy connections close after their current response;
        idle keep-alive ones get idle_grace seconds in which a request is still
        answered (with Connection: close) before close_idle() shuts them."""
        cdef Listener listener
        self.draining = True
        for listener in self.listeners:
            if listener.registered:
                listener._on_events(EPOLLIN)
        self.pause_accepting()
        self.drain_idle_deadline = self.loop.now + idle_grace
        if idle_grace <= 0:
            self.close_idle()

    def close_idle(self):
        """Closes connections with no request in progress."""
        cdef Connection conn
        for conn in list(self.live):
            if conn.state == S_IDLE or conn.state == S_HANDSHAKE or (
                    conn.state == S_HEAD and not conn.got_bytes and not conn.out.pending and not conn.flush_scheduled):
                conn.close()

    def close_all(self):
        """Closes every connection, for good: accepting does not resume as
        they go (the server is done, or a forked child is shedding it)."""
        cdef Connection conn
        self.draining = True
        for conn in list(self.live):
            conn.close()

    def resume_accepting_later(self):
        if not self.draining and not self.accepting and not self.saturated and \
                self.connections < self.max_connections:
            self.resume_accepting()

    def set_saturated(self, bint saturated):
        """Every application thread has a job: accept nothing meanwhile (a
        worker with a free thread takes the new connections), until one is free."""
        self.saturated = saturated
        if saturated:
            if self.accepting:
                self.pause_accepting()
        else:
            self.resume_accepting_later()

    @property
    def idle(self):
        """True when no connection has a request in progress."""
        cdef Connection conn
        for conn in self.live:
            # a response still being written (a large file) is a request in progress
            if conn.state != S_IDLE and conn.state != S_HANDSHAKE and not (
                    conn.state == S_HEAD and not conn.got_bytes and not conn.out.pending and not conn.flush_scheduled):
                return False
        return True


cdef class Listener(Handle):
    """A listening socket: accepts in batches, up to the connection limit.

    Shared by several workers (EPOLLEXCLUSIVE), the kernel wakes only a
    worker that waits in epoll_wait: a busy one (an application running
    inline) is passed over and its share goes to the others. After taking
    connections the listener requeues itself at the back of the socket's
    wait list, so idle workers take turns."""

    cdef int _on_events(self, uint32_t events) except -1:
        cdef sockaddr_storage addr
        cdef socklen_t addr_len
        cdef int fd, i, accepted = 0
        cdef Server server = self.server
        # shared with other workers: one connection per wake-up (nginx's
        # multi_accept off), then to the back of the queue, so a burst of
        # new connections (a client opening 64 keep-alive connections at
        # once) is spread over the idle workers rather than taken by the
        # first one woken
        cdef int batch = 1 if self.events & EPOLLEXCLUSIVE else ACCEPT_BATCH
        for i in range(batch):
            if server.connections >= server.max_connections:
                server.pause_accepting()
                error_log.warning("connection limit reached (max_connections = %d): pausing accept",
                                  server.max_connections)
                break
            addr_len = sizeof(addr)
            fd = accept4(self.fd, <sockaddr *>&addr, &addr_len, SOCK_NONBLOCK | SOCK_CLOEXEC)
            if fd < 0:
                if errno == EAGAIN or errno == EINTR:
                    break
                if errno == EMFILE or errno == ENFILE or errno == ENOBUFS or errno == ENOMEM:
                    server.out_of_descriptors(self, os.strerror(errno))
                    return 0
                continue  # ECONNABORTED and the like: that connection is gone, go on
            accepted += 1
            server.add_connection(fd, self, &addr, addr_len)
        if accepted and self.events & EPOLLEXCLUSIVE and self.registered:
            self.loop.requeue(self)
        return 0

    cdef int refuse_waiting(self) except -1:
        """Out of descriptors: with the spare one, accept each waiting client,
        answer 503 with Retry-After and close, so none waits for nothing."""
        cdef Server server = self.server
        cdef int fd, i
        cdef ssize_t n
        cdef bytes answer = plain_response(503, "the server is out of file descriptors, retry shortly", False, False,
                                           b"Retry-After: 1\r\n")
        if server.spare_fd >= 0:
            close_fd(server.spare_fd)
            server.spare_fd = -1
        for i in range(ACCEPT_BATCH):
            fd = accept4(self.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)
            if fd < 0:
                break
            n = write(fd, <const char *>answer, len(answer))
            shutdown(fd, SHUT_WR)
            close_fd(fd)
            server.refused += 1
            if server.stats is not None:
                server.stats.s.overload_refused += 1
                server.stats.record_response(503, len(answer), 0.0)
        server.reserve_spare()
        return 0


cdef class Connection(Stream):

    # -- events ---------------------------------------------------------------

    cdef int _on_events(self, uint32_t events) except -1:
        if events & EPOLLERR:
            self.close()
            return 0
        if events & EPOLLOUT:
            self._on_writable()
        if self.state == S_CLOSED:
            return 0
        if events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP):
            if self.state == S_APP or self.state == S_CLOSING or self.state == S_HELD:
                # not reading now; HUP (both directions gone) is reported even
                # so, and level-triggered: act on it or it repeats forever
                if events & EPOLLHUP:
                    self.close()
                elif self.interest & EPOLLIN:
                    # kept while the response is produced (see _update): the
                    # client sent more, or its end; stop being told until the
                    # response has gone
                    self.set_interest(self.interest & ~(EPOLLIN | EPOLLRDHUP))
                return 0
            self._on_readable()
        return 0

    cdef int _on_readable(self) except -1:
        cdef char *buf
        cdef ssize_t n
        cdef size_t room
        cdef char sink[4096]
        if self.state == S_LINGER:
            n = recv(self.fd, sink, sizeof(sink), 0)
            if n == 0 or (n < 0 and errno != EAGAIN and errno != EINTR):
                self.close()
            return 0
        if self.state == S_TUNNEL:
            if self.tls == NULL:
                n = recv(self.fd, tunnel_buffer, TUNNEL_READ, 0)
            else:
                n = fc_tls_read(self.tls, tunnel_buffer, TUNNEL_READ)
            if n == 0 or (n < 0 and errno != EAGAIN and errno != EINTR):
                self.close()
            elif n > 0:
                self.server.tunnel_queue.arm(self, self.loop.now)
                self.handler.on_tunnel_data(self, tunnel_buffer, n)
            return 0
        if self.state == S_HANDSHAKE:
            return self._handshake()
        # the parser sizes the read: small while a head arrives (slowloris)
        buf = self.parser.reserve_read(self.server.read_size, &room)
        if self.tls == NULL:
            n = recv(self.fd, buf, room, 0)  # recv, not read: no VFS layer on the way to the socket
        else:
            # OpenSSL may keep plaintext past room: _update sees to it (fc_tls_pending)
            n = fc_tls_read(self.tls, buf, room)
        if n < 0:
            if errno == EAGAIN or errno == EINTR:
                return 0
            self.close()
            return 0
        if n == 0:
            # the client is done sending: between requests, finish writing what
            # is queued and close; inside a request, it aborted
            if self.out.pending and self.state != S_BODY and not (self.state == S_HEAD and self.got_bytes):
                self.state = S_CLOSING
                self._update()
            else:
                self.close()
            return 0
        self.parser.commit(n)
        if self.state == S_IDLE:
            self.state = S_HEAD
            self.server.header_queue.arm(self, self.loop.now)
        elif self.state == S_BODY:
            self.server.body_queue.arm(self, self.loop.now)  # timeout between two reads
            self.body_received += <size_t>n
            if self.server.min_body_rate > 0 and self._body_too_slow():
                if self.server.stats is not None:
                    self.server.stats.s.limit_refused_min_body_rate += 1
                self.send_error(408, "the request body arrived slower than min_body_rate", False, False)
                return 0
        self.got_bytes = True
        self._process()
        return 0

    cdef int _handshake(self) except -1:
        """One step of a TLS listener's handshake, on the event it waited for.
        Done: the connection reads its first request head (header_timeout,
        armed at accept, still runs). A plain HTTP request gets a 400 in
        clear text (nginx's 497); anything else that is not TLS, or a
        handshake that fails, closes this connection alone."""
        cdef int rc = fc_tls_handshake(self.tls)
        if rc == FC_TLS_DONE:
            self.state = S_HEAD
            self.tls_want_write = False
            self._update()
            return self._on_readable()  # the request may have come with the handshake's end
        if rc == FC_TLS_WANT_READ or rc == FC_TLS_WANT_WRITE:
            self.tls_want_write = rc == FC_TLS_WANT_WRITE
            self._update()
        elif rc == FC_TLS_PLAINTEXT:
            fc_tls_conn_free(self.tls)
            self.tls = NULL
            self.state = S_HEAD
            self.send_error(400, "a plain HTTP request was sent to the HTTPS port; use https://")
        else:
            # a refused client certificate, an old protocol, a scanner's
            # garbage: one line each, within refusal_log_rate
            if self.server.may_log_refusal(self.loop.now):
                error_log.info("TLS handshake with %s failed: %s", self.peer_host or "unix socket",
                               (<bytes>self.tls.failure).decode("ascii", "replace") if self.tls.failure != NULL
                               else "unknown")
            self.close()
        return 0

    cdef dict tls_environ(self):
        """The SSL_* keys of this connection's TLS session (tls.session_environ),
        made at the first request that asks; None on a plain connection."""
        if self.tls == NULL:
            return None
        if self.tls_env is None:
            self.tls_env = session_environ(self.tls)
        return self.tls_env

    cdef dict tls_scope(self):
        """The ASGI "tls" scope extension of this connection (tls.session_scope),
        made once; None on a plain connection."""
        if self.tls == NULL:
            return None
        if self.tls_scope_ext is None:
            self.tls_scope_ext = session_scope(self.tls)
        return self.tls_scope_ext

    cdef bint _body_too_slow(self) noexcept:
        """The body so far averages less than min_body_rate since the grace
        ran out (Apache's MinRate: a body of N bytes may take the grace plus
        N / rate seconds). Checked as bytes arrive: one that trickles in
        is cut at its first read past that, not body_timeout per read; one
        that stops is cut by body_timeout."""
        cdef double late = self.loop.now - self.body_since - self.server.body_rate_grace
        return late > 0 and self.body_received < late * self.server.min_body_rate

    cdef int _on_writable(self) except -1:
        cdef int rc
        if self.state == S_HANDSHAKE:
            return self._handshake()
        rc = self._write()
        if rc < 0:
            return 0
        if rc == 0:
            if self.state == S_CLOSING:
                self._begin_linger()
                return 0
            if self.producing:
                self.producing = False
                self.handler.on_writable(self)
                if self.state == S_CLOSED:
                    return 0
            if self.state == S_HEAD:
                if self.parser.buffered():
                    self._process()
                    return 0
                if not self.out.pending:
                    # a large response has gone out: the connection is idle
                    # now, under the keep-alive timeout, its read buffer released
                    self._go_idle()
        self._update()
        return 0

    cdef int _on_timeout(self) except -1:
        if self.state == S_HEAD and self.got_bytes and not self.out.pending:
            self.send_error(408, "the request head did not arrive within header_timeout")
        elif self.state == S_BODY and not self.out.pending:
            self.send_error(408, "the request body stalled longer than body_timeout", False, False)
        else:
            self.close()  # idle keep-alive, a client not reading, or linger over
        return 0

    # -- the request pipeline -------------------------------------------------

    cdef int _process(self) except -1:
        """Runs parser events while the state lets the connection read.
        Not reentrant: a handler that ends its response inline returns here
        and the loop goes on with the next pipelined request, so a long
        pipeline costs no stack depth."""
        if self.processing:
            return 0
        self.processing = True
        try:
            self._process_events()
        finally:
            self.processing = False
        if self.state == S_CLOSED:
            return 0
        if self.state == S_HEAD and self.parser.buffered() == 0 and not self.out.pending:
            self._go_idle()
        self._update()
        return 0

    cdef int _go_idle(self) except -1:
        self.state = S_IDLE
        self.got_bytes = False
        self.parser.release_buffer()
        self.server.keepalive_queue.arm(self, self.loop.now)
        return 0

    cdef int _on_deferred(self) except -1:
        """The batch is over: write the responses this connection completed.
        On a TLS connection, also: read the plaintext OpenSSL holds (_update
        defers for it), which no epoll event would announce."""
        if self.tls != NULL and not self.flush_scheduled:
            if (self.state == S_HEAD or self.state == S_BODY or self.state == S_IDLE or self.state == S_TUNNEL) \
                    and not self.reading_paused and self.out.pending < self.server.high_water:
                self._on_readable()
            return 0
        self.flush_scheduled = False
        if self.state == S_CLOSED:
            return 0
        if self.out.pending and self._write() < 0:
            return 0
        if not self.out.pending:
            if self.state == S_CLOSING:
                self._begin_linger()
                return 0
            if self.state == S_HEAD:
                if self.parser.buffered():
                    self._process()  # pipelined requests held back by the high-water mark
                    return 0
                self._go_idle()
        self._update()
        return 0

    cdef int _process_events(self) except -1:
        """Runs the parser's events through the handler. One try around the
        loop (a try per event costs its exception-state bookkeeping on every
        request): a ParseError answers its status, any other error ends the
        request through _handler_failed, naming the event that raised."""
        cdef int ev = EV_NEED_DATA
        cdef Server server = self.server
        try:
            # a new request is not started while output is above the high-water
            # mark; the events of the current one (its body, its end) always run,
            # even when its handler has just queued a large response
            while self.state == S_BODY or (self.state == S_HEAD and self.out.pending < server.high_water):
                ev = EV_NEED_DATA  # while parsing: a ParseError
                ev = self.parser.next_event()
                if ev == EV_NEED_DATA:
                    break
                if ev == EV_HEAD:
                    if self.peer_trusted:
                        self.client_pending = True  # resolved when first asked (client_ready)
                    self.request_keep_alive = (self.parser.info.flags & FC_REQ_KEEP_ALIVE) != 0
                    self.response_started = False
                    self.state = S_BODY
                    server.body_queue.arm(self, self.loop.now)
                    self.body_since = self.loop.now
                    self.body_received = 0
                    server.requests += 1
                    if server.requests == server.request_limit and server.on_request_limit is not None:
                        # before the handler answers: the last request's response
                        # then says "Connection: close" instead of a promise broken
                        server.on_request_limit()
                    self.handler = self.listener.handler
                    self.handler.on_head(self)
                    if self.handler.limit_rate > 0 or self.throttled:
                        # the location's bandwidth limit, for this response (a
                        # handler that answered in on_head has only queued it)
                        self.limit_response(self.handler.limit_rate, self.handler.limit_rate_after)
                elif ev == EV_BODY:
                    self.handler.on_body(self, self.parser.body_at, self.parser.body_len)
                elif ev == EV_END:
                    self.state = S_APP
                    self.got_bytes = self.parser.buffered() > 0
                    self.disarm()
                    self.handler.on_end(self)
        except ParseError as e:
            if ev != EV_NEED_DATA:
                self._handler_failed(EVENT_NAMES[ev], e)  # a handler's own ParseError
            else:
                # in a body the head's spans are gone (reads moved the buffer)
                self.send_error(e.status, str(e), False, self.state != S_BODY)
        except Exception as e:
            self._handler_failed(EVENT_NAMES[ev] if ev != EV_NEED_DATA else "on_head", e)
        return 0

    cdef int _handler_failed(self, str event, object error) except -1:
        """A handler raised: the request ends here, never goes on with part
        of its data lost. Out of a resource (descriptors, memory, disk) is
        503, anything else 500; both close the connection. If the response
        had begun, the connection is cut instead (no half response dressed
        as complete)."""
        error_log.error("error in %s of %s: ending the request", type(self.handler).__name__ + "." + event,
                        self.peer_host or "unix socket", exc_info=error)
        if self.state == S_CLOSED:
            return 0
        if self.response_started:
            self.close()
            return 0
        if isinstance(error, (MemoryError, OSError)) and getattr(error, "errno", None) in RESOURCE_ERRNOS \
                or isinstance(error, MemoryError):
            self.send_error(503, "the server is short of resources, retry shortly", False, event == "on_head")
        else:
            self.send_error(500, "the server failed to handle this request", False, event == "on_head")
        return 0

    cdef int _update(self) except -1:
        """Sets what epoll watches and which timeout runs, from the state."""
        cdef uint32_t events = 0
        cdef Server server = self.server
        if self.state == S_CLOSED or self.flush_scheduled:
            return 0  # the deferred flush decides, after trying to write
        if self.out.pending:
            if self.token_timer is None:  # else a bandwidth limit's timer writes next
                events |= EPOLLOUT
            if self.queue is not server.send_queue:
                server.send_queue.arm(self, self.loop.now)
        elif self.queue is server.send_queue:
            self.disarm()
            if self.state == S_HEAD:
                server.header_queue.arm(self, self.loop.now)
            elif self.state == S_IDLE:
                server.keepalive_queue.arm(self, self.loop.now)
            elif self.state == S_TUNNEL:
                server.tunnel_queue.arm(self, self.loop.now)
        if (self.state == S_HEAD or self.state == S_BODY or self.state == S_IDLE or self.state == S_LINGER or
                self.state == S_TUNNEL) and self.out.pending < server.high_water and not self.reading_paused:
            events |= EPOLLIN | EPOLLRDHUP
        elif self.state == S_APP:
            # While a response is produced the connection does not read, but
            # its reading interest stays until an event actually comes
            # (_on_events drops it then): the usual client sends nothing
            # more before its answer, and two epoll_ctl calls per request
            # (off, then on again) are saved.
            events |= self.interest & (EPOLLIN | EPOLLRDHUP)
        elif self.state == S_HANDSHAKE:
            events = EPOLLOUT if self.tls_want_write else EPOLLIN | EPOLLRDHUP
        self.set_interest(events)
        if self.tls != NULL and events & EPOLLIN and self.state != S_HANDSHAKE and fc_tls_pending(self.tls):
            self.loop.defer(self)  # read what OpenSSL holds: the socket may have nothing to wake epoll
        return 0

    # -- what handlers call ---------------------------------------------------

    cdef int send(self, bytes data) except -1:
        """Queues data. It goes out at flush(): end_response flushes, so a
        response's head and body leave in one writev."""
        if self.fd >= 0:
            self.response_started = True
            self.out.push(data)
        return 0

    cdef int send_interim(self, bytes data) except -1:
        """Queues a 1xx response and writes it now; a final response may
        still follow (and an error may still replace it)."""
        if self.fd >= 0:
            self.out.push(data)
            self.flush()
        return 0

    cdef int send_file(self, FileSegment segment) except -1:
        if self.fd >= 0:
            self.response_started = True
            self.out.push_file(segment)
        return 0

    cdef int pause_reading(self) except -1:
        """No more reading (a proxied body's upstream is slower than this
        client); the body timeout waits meanwhile: the handler's own
        timeout covers the stall."""
        if self.state == S_BODY and self.queue is self.server.body_queue:
            self.disarm()
        Stream.pause_reading(self)
        return 0

    cdef int resume_reading(self) except -1:
        if self.reading_paused and self.state == S_BODY and self.queue is None:
            self.server.body_queue.arm(self, self.loop.now)
        if self.reading_paused and self.state == S_BODY:
            # the pause was the far side's: min_body_rate measures from now
            self.body_since = self.loop.now
            self.body_received = 0
        Stream.resume_reading(self)
        return 0

    cdef int start_tunnel(self) except -1:
        """After a 101 the handler has sent: the connection carries bytes
        both ways until either side closes or tunnel_idle_timeout passes with
        none. Bytes the client sent after its request head go to the handler
        now."""
        cdef size_t left
        self.state = S_TUNNEL
        self.server.tunnel_queue.arm(self, self.loop.now)
        left = self.parser.buffered()
        if left:
            self.handler.on_tunnel_data(self, self.parser.buf + self.parser.start, left)
            self.parser.start = self.parser.end
        self.parser.release_buffer()
        self._update()
        return 0

    cdef int tunnel_active(self) except -1:
        """The other side of the tunnel moved bytes: the idle timeout restarts."""
        if self.state == S_TUNNEL and self.queue is self.server.tunnel_queue:
            self.server.tunnel_queue.arm(self, self.loop.now)
        return 0

    cdef bint may_keep_alive(self) noexcept:
        """The keep-alive decision for the current request's response: the
        client asked for it (HTTP/1.1 default, or HTTP/1.0 keep-alive) and
        the worker is not stopping."""
        return self.request_keep_alive and not self.server.draining

    cdef int end_response(self, bint keep_alive) except -1:
        """The handler has queued the whole response of the current request."""
        if self.state == S_CLOSED:
            return 0
        if self.limit_table != NULL:
            self.release_limit()
        self.exchange = None
        self.producing = False
        # written after this event batch, with the other responses of the batch
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.defer(self)
        if keep_alive and self.request_keep_alive and not self.server.draining:
            self.state = S_HEAD
            if self.parser.buffered():
                self.server.header_queue.arm(self, self.loop.now)
            self._process()  # returns at once when called from inside _process
        else:
            self.state = S_CLOSING
        return 0

    cdef int send_error(self, int status, str message, bint no_body=False, bint head_spans=True,
                        bytes extra=b"") except -1:
        """Answers status with a short plain-text body (none for a HEAD
        request: no_body) and `extra` header lines (a refusal's Retry-After),
        and closes (after the responses already queued, so pipelined order
        holds). The one place a request the server refuses by itself is
        accounted: stats, access log, and its reason in the error log.
        head_spans: the parsed head's spans are still valid (in a head
        event, which is where handlers refuse); False once a body has been
        read into the buffer."""
        cdef bytes answer = plain_response(status, message, False, no_body, extra)
        self._log_refusal(status, message, answer, head_spans)  # before on_close drops the exchange
        self.release_limit()
        if self.state == S_APP or (self.state == S_BODY and self.exchange is not None):
            try:
                self.handler.on_close(self)
            except Exception:
                error_log.exception("error while closing a request")
        self.exchange = None
        self.producing = False
        self.state = S_CLOSING
        self.send(answer)
        if self.server.stats is not None:
            self.server.stats.record_response(status, len(answer), 0.0)
        self.flush()
        if self.state == S_CLOSED:
            return 0
        if not self.out.pending:
            self._begin_linger()
        else:
            self._update()
        return 0

    cdef int _log_refusal(self, int status, str message, bytes answer, bint head_spans) except -1:
        """The access log line (when the log is on) and the error log line
        (level info) of a refused request: with its method, target and
        version once its head was parsed, "-" for them otherwise."""
        cdef RequestParser p = self.parser
        cdef tuple request = None
        if self.state == S_HEAD:
            # a head refused by the parser: its spans hold this head only if
            # the parser got past the head's syntax (it clears the method
            # otherwise); a head that never came in time leaves it running
            if p.state == ST_DEAD and p.head.method.len:
                request = self._head_request()
        elif self.state == S_BODY and head_spans:
            request = self._head_request()
        elif (self.state == S_BODY or self.state == S_APP) and self.handler is not None:
            request = self.handler.refused_request(self)
        method, target, version = request if request is not None else (None, None, None)
        if self.server.may_log_refusal(self.loop.now):
            error_log.info("refused %d %s from %s: %s", status,
                           "(no request head)" if request is None else
                           f"{method} {target if len(target) <= 200 else target[:200] + '...'} {version}",
                           self.peer_host or "unix socket", message)
        log = self.server.access_log
        if log is not None:
            try:
                log.log(self.peer_host, method, target, version, status, len(answer) - answer.find(b"\r\n\r\n") - 4,
                        0, None, None, None, reason=message)
            except Exception:
                error_log.exception("access log: cannot log a refused request")
        return 0

    cdef tuple _head_request(self):
        """(method, target, version) from the parsed head's spans; None if
        they do not lie in the buffer (a caller that was wrong about them
        gets no line rather than a read of freed memory)."""
        cdef RequestParser p = self.parser
        if (p.buf == NULL or p.head.method.at < p.buf or
                p.head.target.at + p.head.target.len > p.buf + p.end):
            return None
        return (method_str(p.head.method.at, p.head.method.len), latin1(p.head.target.at, p.head.target.len),
                "HTTP/1.1" if p.head.minor_version == 1 else "HTTP/1.0")

    cdef int _begin_linger(self) except -1:
        """After a last response: shut our side, read and drop what the client
        still sends for up to linger_timeout, so closing with unread input
        does not reset the connection before the client has read the response."""
        if self.state == S_CLOSED:
            return 0
        if self.tls != NULL:
            fc_tls_shutdown(self.tls)  # close_notify, if the socket takes it now
        shutdown(self.fd, SHUT_WR)
        self.state = S_LINGER
        self.server.linger_queue.arm(self, self.loop.now)
        self._update()
        return 0

    cdef int _on_closed(self) except -1:
        """The descriptor is closed (Stream.close): tell the handler if the
        connection held an exchange, then release the read buffer and the
        server's count."""
        cdef ConnState was = self.state
        self.state = S_CLOSED
        self.release_limit()
        if (was == S_APP or was == S_BODY or was == S_TUNNEL) and self.exchange is not None:
            try:
                self.handler.on_close(self)
            except Exception:
                error_log.exception("error while closing a response")
        self.exchange = None
        self.parser.release_buffer()
        self.server.connection_closed(self)
        return 0

    # -- limits ------------------------------------------------------------------

    cdef void release_limit(self) noexcept:
        """The request counted against a limit_conn has ended (once)."""
        if self.limit_table != NULL:
            fc_limit_release(self.limit_table, self.limit_key)
            self.limit_table = NULL

    cdef int hold_request(self, double delay) except -1:
        """From a handler's on_head: handle this request after `delay`
        seconds instead of now (a rate limit's burst, limits.pyx). The head
        goes back into the parser (the shared field array is another
        request's by then), the connection reads nothing meanwhile, and the
        head is parsed and routed again once the delay is over, with
        limit_passed set so that the limits let it through."""
        self.parser.unread_head()
        self.state = S_HELD
        self.server.requests -= 1  # counted again when its head is parsed again
        self.disarm()
        self.loop.call_later(delay, self.end_hold)
        return 0

    def end_hold(self):
        if self.state != S_HELD:
            return  # closed meanwhile
        self.state = S_HEAD
        self.limit_passed = True
        self.server.header_queue.arm(self, self.loop.now)
        self._process()

    # -- peer address ----------------------------------------------------------

    cdef int _peer_strings(self) except -1:
        cdef char text[INET6_ADDRSTRLEN + 1]
        cdef sockaddr_in *v4
        cdef sockaddr_in6 *v6
        if self.peer.ss_family == AF_INET:
            v4 = <sockaddr_in *>&self.peer
            inet_ntop(AF_INET, &v4.sin_addr, text, sizeof(text))
            self.peer_host_str = text.decode("ascii")
            self.peer_port_str = str(ntohs(v4.sin_port))
        elif self.peer.ss_family == AF_INET6:
            v6 = <sockaddr_in6 *>&self.peer
            inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof(text))
            self.peer_host_str = text.decode("ascii")
            self.peer_port_str = str(ntohs(v6.sin6_port))
        else:
            self.peer_host_str = ""
            self.peer_port_str = ""
        return 0

    # -- the client (realip.pyx) ----------------------------------------------

    cdef int resolve_client(self) except -1:
        """At a request head from a trusted peer: the client it names in
        real_ip_header, or the peer when it names none."""
        cdef bint forwarded
        self.client_pending = False
        memcpy(self.client_addr, self.peer_addr, 16)
        forwarded = self.server.resolver.resolve(self.parser.head.headers, self.parser.head.num_headers,
                                                 self.client_addr, &self.forwarded_proto)
        if forwarded or self.client_forwarded:
            self.client_str = None
        self.client_forwarded = forwarded
        return 0

    cdef str client_text(self):
        """The client's address as text (the peer's unless forwarded; "" for
        a unix socket peer)."""
        if self.client_pending:
            self.resolve_client()
        if not self.client_forwarded:
            if self.peer_host_str is None:
                self._peer_strings()
            return self.peer_host_str
        if self.client_str is None:
            self.client_str = address_text(self.client_addr)
        return self.client_str

    @property
    def client_host(self):
        """The client of the current request: REMOTE_ADDR, the access log's address."""
        return self.client_text()

    @property
    def peer_host(self):
        if self.peer_host_str is None:
            self._peer_strings()
        return self.peer_host_str

    @property
    def peer_port(self):
        if self.peer_port_str is None:
            self._peer_strings()
        return self.peer_port_str
