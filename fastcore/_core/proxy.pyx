# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The proxy location: requests under a prefix go to a pool of servers.

Theory of operation
-------------------
One ProxyExchange per request, between the client Connection and an
UpstreamConnection:

    on_head: pick a server (the balancer, once) -> serialise the request head
             (hop-by-hop fields out, forwarding fields in) -> a kept-alive
             connection to that server, or a new one
    on_body: body bytes go upstream as they arrive (re-chunked if the client
             sent chunks); when the upstream's queue passes write_buffer_high
             the client's reading pauses until it drains
    upstream_readable: the response parser's events: the head goes to the
             client (hop-by-hop out, framing for the client), body bytes go
             straight from the parser's buffer (send_span); when the client's
             queue passes the mark the upstream's reading pauses until the
             client has taken it (on_writable)
    end: the upstream connection goes back to its pool only after a whole,
         framed exchange; the client connection keeps alive as it asked.

Failures before any response byte: a connect error may always go to
another server; a reset or a timeout only when the method is idempotent or
no byte of the body was read from the client (what was sent is replayed
from `replay`, kept up to REPLAY_MAX); a kept-alive connection that the
server closed as we sent (no response byte) is retried on any method and
counts as no failure. Each try comes from `retries`, and retries in flight
stay under a fifth of the exchanges in flight (with a floor), so an outage
cannot multiply the load. All tries failed: 502, or 504 when the last one
timed out. After the response head has gone to the client, a failure cuts
the client connection: a truncated response is never dressed as complete.

Failures counting towards max_fails: connect errors, timeouts, invalid
responses (Member.note_failure); a kept-alive race does not count.
"""
import logging

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdio cimport snprintf
from libc.stdlib cimport free, realloc
from libc.string cimport memcmp, memcpy

from fastcore._core.includes.fc_http cimport (
    FC_REQ_CHUNKED, FC_REQ_CONNECTION_NAMES, FC_REQ_EXPECT_CONTINUE, FC_REQ_HAS_LENGTH, FC_REQ_UPGRADE,
    FC_RESP_CHUNKED, FC_RESP_CONNECTION_NAMES, FC_RESP_HAS_LENGTH, FC_RESP_KEEP_ALIVE, FC_RESP_NO_BODY,
    FC_RESP_UNTIL_CLOSE,
    fc_header_t, fc_span_t,
)
from fastcore._core.includes.fc_forward cimport (
    FC_FIELD_CONNECTION, FC_FIELD_CONTENT_LENGTH, FC_FIELD_END_TO_END, FC_FIELD_HOP_BY_HOP, FC_FIELD_HOST,
    FC_FIELD_UPGRADE,
    FC_FIELD_X_FORWARDED_FOR, FC_FIELD_X_FORWARDED_HOST, FC_FIELD_X_FORWARDED_PROTO, FC_FIELD_X_REAL_IP,
    FC_FIELD_FORWARDED,
    fc_field_kind, fc_field_kind_t, fc_list_names,
)
from fastcore._core.connection cimport client_ready, Connection, RequestHandler, S_BODY, S_CLOSED, S_TUNNEL
from fastcore._core.loop cimport Loop
from fastcore._core.parser cimport (
    EV_BODY, EV_END, EV_HEAD, EV_NEED_DATA, ST_UNTIL_CLOSE, ST_END, RequestParser, ResponseParser, is_head_request,
    latin1,
)
from fastcore._core.response cimport date_line, plain_response, status_line
from fastcore._core.router cimport Router
from fastcore._core.stats cimport WorkerStats
from fastcore._core.upstream cimport (
    IdlePool, UF_CONNECT, UF_INVALID, UF_RESET, UF_TIMEOUT, U_CLOSED, UpFailure, UpstreamConnection,
    UpstreamOwner, UpstreamTimeouts, TLSClient, TLSPeer, connect_to,
)
from fastcore._core.parser import ParseError

cdef object error_log = logging.getLogger("fastcore.error")

# Bytes of a request kept for a retry (head and the start of the body); a
# request that has sent more than this cannot be replayed.
cdef size_t REPLAY_MAX = 64 * 1024
# What one read from a server may take at most (read_buffer_size, if larger, wins).
cdef size_t UPSTREAM_READ = 64 * 1024
# Retries in flight are allowed up to a fifth of the exchanges in flight
# (Envoy's retry budget), and at least this many.
cdef unsigned long long RETRY_BUDGET_FLOOR = 3

# a response held in the location's writer takes its body along (one send,
# no Python object) when the body is this small and came with the head
cdef size_t HELD_BODY_MAX = 4096
cdef bytes LAST_CHUNK = b"0\r\n\r\n"
cdef bytes CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


cdef inline bytes span_bytes(const char *at, size_t n):
    return PyBytes_FromStringAndSize(at, n)


cdef inline bint method_is(const char *at, size_t n, const char *name, size_t name_len) noexcept:
    return n == name_len and memcmp(at, name, n) == 0


cdef bint idempotent_method(const char *at, size_t n) noexcept:
    """GET, HEAD, OPTIONS, TRACE, PUT, DELETE (RFC 9110 9.2.2): the methods a
    failed try may send again once their body went out."""
    return (method_is(at, n, "GET", 3) or method_is(at, n, "HEAD", 4) or method_is(at, n, "PUT", 3)
            or method_is(at, n, "DELETE", 6) or method_is(at, n, "OPTIONS", 7) or method_is(at, n, "TRACE", 5))


cdef int put(HeadWriter *w, const char *at, size_t n) except -1:
    """Appends to the head being written (the buffer grows, it never shrinks)."""
    cdef size_t want
    cdef char *grown
    if w.len + n > w.cap:
        want = w.cap * 2 if w.cap * 2 > w.len + n else w.len + n + 1024
        grown = <char *>realloc(w.data, want)
        if grown == NULL:
            raise MemoryError()
        w.data = grown
        w.cap = want
    memcpy(w.data + w.len, at, n)
    w.len += n
    return 0


cdef inline int put_bytes(HeadWriter *w, bytes data) except -1:
    return put(w, PyBytes_AS_STRING(data), <size_t>PyBytes_GET_SIZE(data))


cdef bytes rfc7239_node(bytes address):
    """An address as RFC 7239's for= takes it: IPv6 quoted in brackets, a
    unix socket's client "unknown"."""
    if address == b"unix":
        return b"unknown"
    if b":" in address:
        return b'"[' + address + b']"'
    return address


cdef int put_elements(HeadWriter *w, fc_header_t *fields, size_t count, fc_field_kind_t kind) except -1:
    """The values of every field of `kind`, each followed by ", ": a
    trusted client's list, which our own element then ends."""
    cdef size_t i
    for i in range(count):
        if fc_field_kind(fields[i].name.at, fields[i].name.len) == kind:
            put(w, fields[i].value.at, fields[i].value.len)
            put(w, ", ", 2)
    return 0


cdef inline int put_field(HeadWriter *w, const char *name, size_t name_len, const char *value,
                          size_t value_len) except -1:
    put(w, name, name_len)
    put(w, ": ", 2)
    put(w, value, value_len)
    put(w, "\r\n", 2)
    return 0


cdef bint named_by_connection(fc_header_t *fields, size_t count, const char *name, size_t name_len) noexcept:
    """Some Connection field lists this name (so it is hop-by-hop too)."""
    cdef size_t i
    for i in range(count):
        if fc_field_kind(fields[i].name.at, fields[i].name.len) == FC_FIELD_CONNECTION and \
                fc_list_names(fields[i].value.at, fields[i].value.len, name, name_len):
            return True
    return False


cdef class RequestView:
    """What the balancer may look at while it picks: valid only during the
    pick (it reads the parser's spans), never kept."""
    cdef Connection conn

    @property
    def method(self):
        cdef RequestParser p = self.conn.parser
        return latin1(p.head.method.at, p.head.method.len)

    @property
    def path(self):
        cdef RequestParser p = self.conn.parser
        return latin1(p.head.target.at, p.head.target.len)

    @property
    def client_ip(self):
        return self.conn.client_text()

    def header(self, str name):
        cdef RequestParser p = self.conn.parser
        cdef size_t i
        cdef bytes wanted = name.lower().encode("latin-1")
        for i in range(p.head.num_headers):
            if p.fields[i].name.len == <size_t>len(wanted) and \
                    span_bytes(p.fields[i].name.at, p.fields[i].name.len).lower() == wanted:
                return latin1(p.fields[i].value.at, p.fields[i].value.len)
        return None


cdef class SavedView:
    """The parts of a request a retry's pick may look at, kept after the
    parser's spans are gone (the hash key's header only)."""
    cdef readonly str method
    cdef readonly str path
    cdef readonly str client_ip
    cdef object hashed_header

    def __cinit__(self, str method, str path, str client_ip, hashed_header):
        self.method = method
        self.path = path
        self.client_ip = client_ip
        self.hashed_header = hashed_header

    def header(self, str name):
        return self.hashed_header


cdef class ProxyLocation(RequestHandler):
    """Requests under `prefix` go to the servers of `pool` (a fastcore.proxy.Pool)."""

    def __cinit__(self, Router router, Loop loop, str prefix, Pool pool, options, config):
        self.router = router
        self.loop = loop
        self.prefix = prefix
        hash_key = pool.hash_key or ""
        self.hash_pool = pool.balance == "hash"
        self.hash_header = hash_key[len("header:"):] if hash_key.startswith("header:") else None
        self.prefix_bytes = b"" if prefix == "/" else prefix.encode("utf-8")
        self.pool = pool
        self.servers = {}
        self.timeouts = UpstreamTimeouts(loop, options.connect_timeout, options.read_timeout,
                                         options.send_timeout, options.keepalive_idle)
        self.parser_limits = dict(max_body=1 << 62, max_request_line=config.max_request_line,
                                  max_header_bytes=max(config.max_header_bytes, 64 * 1024),
                                  max_headers=max(config.max_headers, 200), max_chunk_line=config.max_chunk_line)
        # responses are read in larger pieces than requests: a body from a
        # server on the same network arrives faster than clients read it
        self.read_size = max(config.read_buffer_size, UPSTREAM_READ)
        self.high_water = config.write_buffer_high
        self.keepalive = options.keepalive
        self.keepalive_requests = options.keepalive_requests
        self.retries = options.retries
        self.strip_prefix = options.strip_prefix
        if options.host == "pass":
            self.host_mode = HOST_PASS
        elif options.host == "upstream":
            self.host_mode = HOST_UPSTREAM
        else:
            self.host_mode = HOST_FIXED
            self.host_line = b"Host: " + (<str>options.host).encode("latin-1") + b"\r\n"
        self.peers = {}
        self.websocket = options.websocket
        self.forwarded = options.forwarded
        self.via = options.via
        self.limit_rate = options.limit_rate or 0
        self.limit_rate_after = options.limit_rate_after or 0
        self.tls_options = (options.tls_verify, options.tls_ca_certs, options.tls_certfile, options.tls_keyfile)
        self.tls_server_name = options.tls_server_name
        if any(server.address.startswith("https://") for server in options.servers):
            self.tls_context()  # a bad CA file or client certificate stops the start, not a request

    def __dealloc__(self):
        free(self.writer.data)

    cdef tuple server_for(self, Member member):
        """(family, sockaddr, IdlePool, TLSPeer or None) of a member, made on
        first use. The name an https:// server's certificate must carry: the
        location's tls_server_name, else the DNS name the member was
        resolved from, else the address's host (an IP address)."""
        cdef tuple entry = self.servers.get(member.address)
        if entry is None:
            entry = self.new_server(member)
        return entry

    cdef tuple new_server(self, Member member):
        cdef TLSPeer peer = None
        from fastcore.proxy.balancer import parse_address
        family, sockaddr = parse_address(member.address)
        if (<str>member.address).startswith("https://"):
            peer = TLSPeer(self.tls_context(), self.tls_server_name or member.server_name or sockaddr[0])
        entry = (family, sockaddr, IdlePool(self.keepalive), peer)
        self.servers[member.address] = entry
        return entry

    cdef TLSClient tls_context(self):
        """The TLS context of the https:// servers, made once. A failure
        (a file gone since the start) raises OSError: a connect failure."""
        if self.tls_client is None:
            verify, ca_certs, certfile, keyfile = self.tls_options
            try:
                self.tls_client = TLSClient(verify, ca_certs, certfile, keyfile)
            except ValueError as e:
                raise OSError(str(e)) from None
        return self.tls_client

    def tls_session_of(self, str address):
        """Whether a session of the https:// server at address is kept (tests)."""
        entry = self.servers.get(address)
        return entry is not None and entry[3] is not None and entry[3].has_session

    cdef UpstreamConnection connection_to(self, Member member, bint peek):
        """A kept-alive connection to member, or a new one (connecting)."""
        cdef tuple entry = self.server_for(member)
        cdef IdlePool idle = <IdlePool>entry[2]
        cdef UpstreamConnection up = idle.take(peek)
        if up is not None:
            return up
        return connect_to(self.loop, entry[0], entry[1], idle, self.timeouts, self.parser_limits, self.read_size,
                          self.keepalive_requests, <TLSPeer>entry[3])

    def forget_server(self, str address):
        """A member left the pool (drained, reaped): close its kept connections."""
        entry = self.servers.pop(address, None)
        if entry is not None:
            (<IdlePool>entry[2]).close_all()

    def close_idle(self):
        for entry in self.servers.values():
            (<IdlePool>entry[2]).close_all()

    def probe(self, Member member, bytes request, double timeout, done):
        """An active health check of member through this location's own
        upstream path: `request` goes out on a kept-alive connection of the
        member (or a new one), the answer is read with the response parser,
        and done(status, reason) is called once: status 0 when there was no
        valid answer within `timeout`. Returns the probe (abort() ends it
        without a call)."""
        cdef HealthProbe probe = HealthProbe.__new__(HealthProbe)
        probe.location = self
        probe.member = member
        probe.request = request
        probe.done = done
        probe.timer = self.loop.call_later(timeout, probe.timed_out)
        probe.start()
        return probe

    # -- RequestHandler ---------------------------------------------------------------

    cdef int on_head(self, Connection conn) except -1:
        cdef RequestParser p = conn.parser
        cdef ProxyExchange ex = ProxyExchange.__new__(ProxyExchange)
        cdef RequestView view
        cdef unsigned flags = p.info.flags
        ex.conn = conn
        ex.location = self
        ex.began = conn.loop.now  # when this batch's events came: the request had been read by then
        ex.idempotent = idempotent_method(p.head.method.at, p.head.method.len)
        ex.is_head = is_head_request(p)
        ex.http11 = p.head.minor_version == 1
        ex.chunked_up = (flags & FC_REQ_CHUNKED) != 0
        conn.exchange = ex
        if self.hash_pool:
            # the balancer reads the request (valid during the pick only);
            # a retry's pick reads what was kept of it
            view = RequestView.__new__(RequestView)
            view.conn = conn
            try:
                ex.member = self.pool.pick(view, conn.loop.now)
                ex.view = SavedView(latin1(p.head.method.at, p.head.method.len),
                                    latin1(p.head.target.at, p.head.target.len), conn.peer_host,
                                    None if self.hash_header is None else view.header(self.hash_header))
            finally:
                view.conn = None
        else:
            ex.member = self.pool.pick(None, conn.loop.now)
        head = self.request_head(conn, ex)
        ex.head = head
        ex.replayable = True
        ex.replay_size = len(head)
        # a body that may not fit the replay buffer: such a request could
        # not go again after a kept-alive connection's race, so it peeks
        ex.may_outgrow_replay = ex.chunked_up or (flags & FC_REQ_HAS_LENGTH and
                                                  p.info.content_length + ex.replay_size > REPLAY_MAX)
        if ex.member is None:
            ex.replayable = False
            return self.fail(conn, 503, "no server of this location is available")
        if flags & FC_REQ_EXPECT_CONTINUE and (ex.chunked_up or (flags & FC_REQ_HAS_LENGTH and p.info.content_length)):
            conn.send_interim(CONTINUE)
        self.active += 1
        ex.start_try()
        return 0

    cdef bytes address_bytes(self, str host):
        """An address as it goes into a forwarding field, cached."""
        cdef bytes entry = self.peers.get(host)
        if entry is None:
            entry = host.encode("ascii") if host else b"unix"
            if len(self.peers) < 4096:
                self.peers[host] = entry
        return entry

    cdef bytes request_head(self, Connection conn, ProxyExchange ex):
        """The request head as it goes upstream, built in one buffer while
        the parser's spans are valid: hop-by-hop fields out (and those the
        Connection fields name), the forwarding fields in, our framing."""
        cdef RequestParser p = conn.parser
        cdef HeadWriter *w = &self.writer
        cdef fc_header_t *f
        cdef fc_header_t *fields = p.fields
        cdef size_t i, count = p.head.num_headers
        cdef fc_field_kind_t kind
        cdef bint has_connection = False, trusted, listed_for = False
        cdef fc_span_t host, proto, forwarded_host
        cdef bint listed_forwarded = False
        cdef unsigned flags = p.info.flags
        cdef char number[48]
        cdef int digits
        cdef bytes peer, client, path
        # the chain goes on with the peer (the hop before us); X-Real-IP is
        # the client the core resolved (the peer unless a trusted proxy named another)
        trusted = conn.peer_trusted
        peer = self.address_bytes(conn.peer_host)
        client_ready(conn)
        client = self.address_bytes(conn.client_text()) if conn.client_forwarded else peer
        host.at = proto.at = forwarded_host.at = NULL
        host.len = proto.len = forwarded_host.len = 0
        w.len = 0
        put(w, p.head.method.at, p.head.method.len)
        put(w, " ", 1)
        if self.strip_prefix:
            path = self.router.path[self.router.match_len:self.router.path_len]
            if not path.startswith(b"/"):
                put(w, "/", 1)
            put_bytes(w, path)
            if p.info.query.len:
                put(w, "?", 1)
                put(w, p.info.query.at, p.info.query.len)
        else:
            put(w, p.head.target.at, p.head.target.len)
        put(w, " HTTP/1.1\r\n", 11)
        has_connection = (flags & FC_REQ_CONNECTION_NAMES) != 0  # only then may a field be named by it
        for i in range(count):
            f = &fields[i]
            kind = fc_field_kind(f.name.at, f.name.len)
            if kind == FC_FIELD_END_TO_END:
                if not (has_connection and named_by_connection(fields, count, f.name.at, f.name.len)):
                    put_field(w, f.name.at, f.name.len, f.value.at, f.value.len)
            elif kind == FC_FIELD_HOST:
                host = f.value
            elif kind == FC_FIELD_UPGRADE:
                if flags & FC_REQ_UPGRADE and self.websocket:
                    ex.upgrade = span_bytes(f.value.at, f.value.len)  # a tunnel is asked for
            elif trusted:
                # the forwarding fields of a trusted client pass on (anyone
                # else's are replaced below, never passed or appended to)
                if kind == FC_FIELD_X_FORWARDED_FOR:
                    listed_for = True
                elif kind == FC_FIELD_X_FORWARDED_PROTO and proto.at == NULL:
                    proto = f.value
                elif kind == FC_FIELD_X_FORWARDED_HOST and forwarded_host.at == NULL:
                    forwarded_host = f.value
                elif kind == FC_FIELD_FORWARDED:
                    if self.forwarded:
                        listed_forwarded = True  # joined with ours below
                    else:
                        put_field(w, f.name.at, f.name.len, f.value.at, f.value.len)
        if self.host_mode == HOST_PASS:
            if host.at != NULL:
                put_field(w, "Host", 4, host.at, host.len)
        elif self.host_mode == HOST_FIXED:
            put_bytes(w, self.host_line)
        elif ex.member is not None:
            put(w, "Host: ", 6)
            put_bytes(w, ex.member_host())
            put(w, "\r\n", 2)
        put(w, "X-Forwarded-For: ", 17)
        if listed_for:
            put_elements(w, fields, count, FC_FIELD_X_FORWARDED_FOR)
        put_bytes(w, peer)
        put(w, "\r\n", 2)
        if proto.at != NULL:
            put_field(w, "X-Forwarded-Proto", 17, proto.at, proto.len)
        else:
            put(w, "X-Forwarded-Proto: http\r\n", 25)
        put(w, "X-Real-IP: ", 11)
        put_bytes(w, client)
        put(w, "\r\n", 2)
        if forwarded_host.at != NULL:
            put_field(w, "X-Forwarded-Host", 16, forwarded_host.at, forwarded_host.len)
        elif host.at != NULL:
            put_field(w, "X-Forwarded-Host", 16, host.at, host.len)
        if self.forwarded:
            self.put_forwarded(w, fields, count, listed_forwarded, rfc7239_node(peer), host, proto)
        if self.via:
            put(w, "Via: 1.1 fastcore\r\n", 19)
        if ex.upgrade is not None:
            put(w, "Connection: upgrade\r\nUpgrade: ", 30)
            put_bytes(w, ex.upgrade)
            put(w, "\r\n", 2)
        if ex.chunked_up:
            put(w, "Transfer-Encoding: chunked\r\n", 28)
        elif flags & FC_REQ_HAS_LENGTH:
            digits = snprintf(number, sizeof(number), "Content-Length: %llu\r\n",
                              <unsigned long long>p.info.content_length)
            put(w, number, digits)
        put(w, "\r\n", 2)
        return PyBytes_FromStringAndSize(w.data, w.len)

    cdef int put_forwarded(self, HeadWriter *w, fc_header_t *fields, size_t count, bint listed,
                           bytes node, fc_span_t host, fc_span_t proto) except -1:
        """Forwarded (RFC 7239): a trusted client's elements first (listed),
        then ours: for=the client, host=the Host it asked for, proto."""
        put(w, "Forwarded: ", 11)
        if listed:
            put_elements(w, fields, count, FC_FIELD_FORWARDED)
        put(w, "for=", 4)
        put_bytes(w, node)
        if host.at != NULL:
            # quoted: a host with a port is no token; the parser let no quote
            # or backslash into Host
            put(w, ";host=\"", 7)
            put(w, host.at, host.len)
            put(w, "\"", 1)
        if proto.at != NULL:  # a trusted client's X-Forwarded-Proto
            put(w, ";proto=", 7)
            put(w, proto.at, proto.len)
            put(w, "\r\n", 2)
        else:
            put(w, ";proto=http\r\n", 13)
        return 0

    cdef int on_body(self, Connection conn, const char *at, size_t n) except -1:
        cdef ProxyExchange ex = <ProxyExchange>conn.exchange
        if ex is not None:
            ex.body_started = True
            ex.forward_body(at, n)
        return 0

    cdef int on_end(self, Connection conn) except -1:
        cdef ProxyExchange ex = <ProxyExchange>conn.exchange
        if ex is None:
            return 0
        ex.request_done = True
        if ex.up is not None:
            if ex.chunked_up:
                ex.up.send(LAST_CHUNK)
                ex.keep_for_replay(LAST_CHUNK)
            ex.up.flush()
            if ex.up is not None:
                ex.up.arm_read()
        return 0

    cdef int on_tunnel_data(self, Connection conn, const char *at, size_t n) except -1:
        cdef ProxyExchange ex = <ProxyExchange>conn.exchange
        if ex is None or ex.up is None:
            return 0
        ex.up.send_span(at, n)
        if ex.up is not None and ex.up.out.pending >= self.high_water:
            conn.pause_reading()
            ex.up.wait_writable()
        return 0

    cdef int on_writable(self, Connection conn) except -1:
        """The client took what was queued: read the upstream again."""
        cdef ProxyExchange ex = <ProxyExchange>conn.exchange
        if ex is not None and ex.up is not None:
            ex.up.resume_reading()
            ex.run_response()
        return 0

    cdef int on_close(self, Connection conn) except -1:
        """The client went away: the upstream connection carries an
        unfinished exchange and is closed, never pooled."""
        cdef ProxyExchange ex = <ProxyExchange>conn.exchange
        if ex is not None:
            ex.drop_upstream()
            self.active -= 1
        return 0

    cdef int fail(self, Connection conn, int status, str message) except -1:
        """Answers status (502, 503, 504) before any response byte went out."""
        cdef ProxyExchange ex = <ProxyExchange>conn.exchange
        if ex is not None:
            ex.status = status
            ex.sent = 0
        error_log.warning("proxy %s: %s: %d %s", self.prefix, ex.request_line() if ex is not None else "",
                          status, message)
        if conn.state == S_CLOSED:
            return 0
        body = plain_response(status, message, False, ex is not None and ex.is_head)
        if ex is not None:
            ex.sent = len(body)
            ex.account()
            if ex.tries:
                self.active -= 1
        conn.exchange = None
        conn.send(body)
        conn.end_response(False)
        return 0


cdef class ProxyExchange(UpstreamOwner):

    cdef str request_line(self):
        """The request line as it went upstream (for logs): made only when needed."""
        if self.head is None:
            return ""
        return self.head[:self.head.find(b"\r\n")].decode("latin-1")

    cdef bytes member_host(self):
        cdef str address = self.member.address
        if address.startswith("https://"):
            address = address[8:]
        return address.encode("latin-1")

    cdef int start_try(self) except -1:
        """Sends the request to self.member: a kept-alive connection or a new one."""
        cdef ProxyLocation loc = self.location
        cdef UpstreamConnection up
        cdef bytes part
        self.tries += 1
        try:
            # a request that can go again (the usual: no body, or a small one)
            # survives a kept-alive connection the server has just closed
            # (retried); only one that could not is worth the peek's syscall
            up = loc.connection_to(self.member, not self.replayable or self.may_outgrow_replay)
        except OSError as e:
            self.member.failures += 1
            self.member.note_failure(self.conn.loop.now)
            return self.after_failure(UF_CONNECT, f"connect: {e.strerror or e}", False)
        self.up = up
        self.member.active += 1
        self.member.requests += 1
        up.start_exchange(self)
        up.parser.request_was_head = self.is_head  # a response to HEAD has no body, whatever it declares
        # the head at once, from its bytes (nothing is queued on a connection
        # just taken); the body kept for a retry, if any, follows it
        up.send_span(PyBytes_AS_STRING(self.head), <size_t>PyBytes_GET_SIZE(self.head))
        if self.replay is not None and self.up is up:
            for part in self.replay:
                up.send(part)
            up.flush()
        if self.up is up and self.request_done:
            up.arm_read()
        return 0

    cdef int forward_body(self, const char *at, size_t n) except -1:
        cdef UpstreamConnection up = self.up
        cdef bytes chunk
        if self.chunked_up:
            chunk = b"%x\r\n" % n + PyBytes_FromStringAndSize(at, n) + b"\r\n"
            if up is not None:
                up.send(chunk)
                up.flush()
            self.keep_for_replay(chunk)
        elif self.replayable:
            chunk = PyBytes_FromStringAndSize(at, n)
            if up is not None:
                up.send(chunk)
                up.flush()
            self.keep_for_replay(chunk)
        elif up is not None:
            up.send_span(at, n)
        up = self.up
        if up is not None and up.out.pending >= self.location.high_water:
            # the upstream takes less than the client sends: stop reading the client
            self.conn.pause_reading()
            up.wait_writable()
        return 0

    cdef int keep_for_replay(self, bytes chunk) except -1:
        if not self.replayable:
            return 0
        if self.replay_size + len(chunk) > REPLAY_MAX:
            self.replayable = False  # too much to replay: this request cannot be retried once written
            self.replay = None
        else:
            if self.replay is None:
                self.replay = []
            self.replay.append(chunk)
            self.replay_size += len(chunk)
        return 0

    # -- UpstreamOwner -------------------------------------------------------------------

    cdef int upstream_ready(self, UpstreamConnection up) except -1:
        return 0

    cdef int upstream_drained(self, UpstreamConnection up) except -1:
        self.conn.resume_reading()
        return 0

    cdef int upstream_readable(self, UpstreamConnection up) except -1:
        if up is self.up:
            self.run_response()
        return 0

    cdef int upstream_failed(self, UpstreamConnection up, UpFailure failure, str why) except -1:
        cdef bint race
        if up is not self.up:
            return 0
        self.up = None
        self.member.active -= 1
        # the server closed a kept-alive connection as we sent: nothing was
        # processed, so any method goes again, and the member did nothing wrong
        race = up.exchanges > 1 and failure == UF_RESET and not up.got_bytes
        if not race:
            self.member.failures += 1
            if self.member.note_failure(self.conn.loop.now):
                error_log.error("proxy %s: %s marked down for %s s after %s", self.location.prefix,
                                self.member.address, self.member.fail_timeout, why)
        return self.after_failure(failure, why, race)

    cdef int after_failure(self, UpFailure failure, str why, bint race) except -1:
        """A try failed: the next server, or the error to the client."""
        cdef ProxyLocation loc = self.location
        cdef Connection conn = self.conn
        cdef object member
        cdef unsigned long long budget
        if self.retrying:
            self.retrying = False
            loc.retrying -= 1
        if conn.state == S_CLOSED:
            return 0
        if self.response_started:
            error_log.error("proxy %s: %s: %s (%s) after the response began: closing the client connection",
                            loc.prefix, self.request_line(), why, self.member.address)
            self.account()
            conn.close()
            return 0
        budget = max(RETRY_BUDGET_FLOOR, loc.active // 5)
        if self.replayable and (race or (
                self.tries <= loc.retries and loc.retrying < budget and
                (failure == UF_CONNECT or self.idempotent or not self.body_started))):
            if race:
                member = self.member
            else:
                if self.tried is None:
                    self.tried = []
                self.tried.append(self.member)
                member = loc.pool.pick(self.view, conn.loop.now, self.tried)
            if member is not None:
                if not race:
                    self.retrying = True
                    loc.retrying += 1
                    loc.retries_total += 1
                    member.retries += 1
                self.member = member
                if race:
                    self.tries -= 1  # the same server again: the race is no try of its own
                return self.start_try()
        if failure == UF_TIMEOUT:
            return loc.fail(conn, 504, f"{self.member.address}: {why}")
        return loc.fail(conn, 502, f"{self.member.address}: {why}")

    # -- the response ---------------------------------------------------------------------

    cdef int run_response(self) except -1:
        """Runs the upstream parser's events while the client takes the bytes."""
        cdef UpstreamConnection up = self.up
        cdef ResponseParser p
        cdef int ev
        cdef Connection conn = self.conn
        cdef size_t high_water = self.location.high_water
        if up is None:
            return 0
        p = up.parser
        if self.tunnel:
            return self.tunnel_from_upstream()
        while self.up is up:
            if conn.out.pending >= high_water:
                self.queue_held_head()
                conn.flush()  # what this batch queued
                if self.up is not up:
                    return 0  # the client went away
                if conn.out.pending >= high_water:
                    # the client is slower than the server: stop reading it
                    # until the client's queue drains (on_writable)
                    up.pause_reading()
                    conn.wait_writable()
                    return 0
            try:
                ev = p.next_event()
            except ParseError as e:
                self.head_held = False
                self.up = None
                self.member.active -= 1
                self.member.failures += 1
                self.member.note_failure(conn.loop.now)
                up.close()
                return self.after_failure(UF_INVALID, f"invalid response: {e}", False)
            if ev == EV_NEED_DATA:
                if up.eof:
                    if p.state == ST_UNTIL_CLOSE:
                        p.state = ST_END
                        continue
                    self.up = None
                    self.member.active -= 1
                    up.close()
                    race = up.exchanges > 1 and not up.got_bytes
                    if not race:
                        self.member.failures += 1
                    return self.after_failure(UF_RESET, "the server closed the connection"
                                              + (" before answering" if not up.got_bytes else " inside a response"),
                                              race)
                self.queue_held_head()
                conn.flush()  # what this read gave goes out now; the rest follows as it comes
                return 0
            if self.head_held:
                # the head is still in the writer: a small body that came with
                # it, or the end, goes out with it in one send, else it is queued
                if ev == EV_BODY and not self.chunked_down and not conn.out.pending and \
                        p.body_len <= HELD_BODY_MAX:
                    self.head_held = False
                    put(&self.location.writer, p.body_at, p.body_len)
                    self.sent += p.body_len
                    conn.send_span(self.location.writer.data, self.location.writer.len)
                    continue
                if ev == EV_END and not conn.out.pending:
                    self.head_held = False
                    conn.send_span(self.location.writer.data, self.location.writer.len)
                    if self.up is not up:
                        return 0  # the client went away
                else:
                    self.queue_held_head()
            if ev == EV_HEAD:
                self.response_head()
            elif ev == EV_BODY:
                if self.chunked_down:
                    conn.send(b"%x\r\n" % p.body_len)
                    conn.send(PyBytes_FromStringAndSize(p.body_at, p.body_len))
                    conn.send(b"\r\n")
                elif conn.out.pending:
                    # queued behind the head (or earlier body): all of it
                    # leaves in one writev, at the flush below or the end
                    conn.send(PyBytes_FromStringAndSize(p.body_at, p.body_len))
                else:
                    conn.send_span(p.body_at, p.body_len)  # straight from the parser's buffer
                self.sent += p.body_len
            elif ev == EV_END:
                if self.status == 101 and self.upgrade is not None:
                    return self.begin_tunnel()
                if self.status < 200:
                    continue  # an interim response: the final one follows
                return self.response_end()
        return 0

    cdef int response_head(self) except -1:
        """The response head as it goes to the client, built in one buffer:
        hop-by-hop fields out, our framing for this client."""
        cdef ResponseParser p = self.up.parser
        cdef Connection conn = self.conn
        cdef HeadWriter *w = &self.location.writer
        cdef unsigned flags = p.info.flags
        cdef size_t i, count = p.head.num_headers
        cdef fc_header_t *f
        cdef fc_header_t *fields = p.fields
        cdef fc_field_kind_t kind
        cdef bint has_connection = False
        self.status = p.head.status
        if self.status == 101 and self.upgrade is not None:
            return self.switching_protocols()
        if self.status < 200 and (self.status == 100 or not self.http11):
            return 0  # 100 was answered by us already; HTTP/1.0 clients get no interim responses
        if self.status >= 200:
            self.replayable = False  # a response has begun: never retried now
            self.replay = None
        w.len = 0
        put_bytes(w, status_line(self.status))
        has_connection = (flags & FC_RESP_CONNECTION_NAMES) != 0
        for i in range(count):
            f = &fields[i]
            kind = fc_field_kind(f.name.at, f.name.len)
            if kind == FC_FIELD_CONTENT_LENGTH:
                if not flags & (FC_RESP_HAS_LENGTH | FC_RESP_NO_BODY):
                    continue
            elif kind == FC_FIELD_HOP_BY_HOP or kind == FC_FIELD_CONNECTION or kind == FC_FIELD_UPGRADE:
                continue
            if has_connection and named_by_connection(fields, count, f.name.at, f.name.len):
                continue
            put_field(w, f.name.at, f.name.len, f.value.at, f.value.len)
        if self.status < 200:
            put(w, "\r\n", 2)
            conn.send_interim(PyBytes_FromStringAndSize(w.data, w.len))
            return 0
        self.client_keep = conn.may_keep_alive()
        if flags & (FC_RESP_CHUNKED | FC_RESP_UNTIL_CLOSE) and not flags & FC_RESP_NO_BODY:
            if self.http11:
                self.chunked_down = True
                put(w, "Transfer-Encoding: chunked\r\n", 28)
            else:
                self.client_keep = False  # HTTP/1.0: the body ends when the connection does
        if not self.request_done:
            self.client_keep = False  # answered before the request's end: its body will not be read
        if self.location.via:
            put(w, "Via: 1.1 fastcore\r\n", 19)
        if not self.client_keep:
            put(w, "Connection: close\r\n", 19)
        elif not self.http11:
            put(w, "Connection: keep-alive\r\n", 24)
        put(w, "\r\n", 2)
        self.response_started = True
        self.sent = w.len
        self.head_held = True  # queued by run_response, with a small body if one follows at once
        return 0

    cdef int queue_held_head(self) except -1:
        """The head response_head left in the location's writer goes into
        the client's queue, before anything else runs that may use the writer."""
        cdef HeadWriter *w = &self.location.writer
        if self.head_held:
            self.head_held = False
            self.conn.send(PyBytes_FromStringAndSize(w.data, w.len))
        return 0

    # -- a tunnel (WebSocket, or any Upgrade the server accepted) -------------------------

    cdef int switching_protocols(self) except -1:
        """The server's 101 goes to the client with its Upgrade field."""
        cdef ResponseParser p = self.up.parser
        cdef size_t i
        cdef fc_header_t *f
        cdef bytes lower
        cdef list parts = [b"HTTP/1.1 101 Switching Protocols\r\n"]
        for i in range(p.head.num_headers):
            f = &p.fields[i]
            lower = span_bytes(f.name.at, f.name.len).lower()
            if lower == b"connection" or lower == b"keep-alive" or lower == b"transfer-encoding" or \
                    lower == b"content-length":
                continue
            parts += [span_bytes(f.name.at, f.name.len), b": ", span_bytes(f.value.at, f.value.len), b"\r\n"]
        parts.append(b"Connection: upgrade\r\n\r\n")
        head = b"".join(parts)
        self.replayable = False
        self.replay = None
        self.response_started = True
        self.sent = len(head)
        self.conn.send(head)
        return 0

    cdef int begin_tunnel(self) except -1:
        """After the 101: both connections carry bytes as they come."""
        self.tunnel = True
        self.account()
        # no read timeout in a tunnel: tunnel_idle_timeout (the client side's) covers both ways
        self.up.request_sent = False
        self.up.disarm()
        self.conn.flush()
        if self.conn.state == S_CLOSED:
            return 0
        self.conn.start_tunnel()
        return self.tunnel_from_upstream()

    cdef int tunnel_from_upstream(self) except -1:
        """Bytes the server sent go to the client, straight from the parser's
        buffer; its end closes the client's side once the rest is out."""
        cdef UpstreamConnection up = self.up
        cdef ResponseParser p = up.parser
        cdef Connection conn = self.conn
        cdef size_t n = p.end - p.start
        if n:
            conn.send_span(p.buf + p.start, n)
            p.start = p.end
            p.release_buffer()
            conn.tunnel_active()
        if up.eof:
            self.drop_upstream()
            self.location.active -= 1
            conn.exchange = None
            if conn.state != S_CLOSED:
                conn.end_response(False)
            return 0
        if conn.state != S_CLOSED and conn.out.pending >= self.location.high_water:
            up.pause_reading()
            conn.wait_writable()
        return 0

    cdef int response_end(self) except -1:
        cdef UpstreamConnection up = self.up
        cdef ResponseParser p = up.parser
        cdef bint reusable
        if self.chunked_down:
            self.conn.send(LAST_CHUNK)
            self.sent += len(LAST_CHUNK)
        reusable = self.request_done and (p.info.flags & FC_RESP_KEEP_ALIVE) != 0 and \
            not (p.info.flags & FC_RESP_UNTIL_CLOSE)
        self.up = None
        self.member.active -= 1
        if reusable:
            up.release()
        else:
            up.close()
        if self.member.recent_failures:
            self.member.note_success(self.conn.loop.now)
        return self.finish(self.client_keep)

    cdef int finish(self, bint keep) except -1:
        cdef Connection conn = self.conn
        self.account()
        self.location.active -= 1
        conn.exchange = None
        conn.end_response(keep)
        return 0

    cdef int account(self) except -1:
        cdef WorkerStats stats = self.conn.server.stats
        cdef double seconds = self.conn.loop.clock() - self.began
        if stats is not None:
            stats.record_response(self.status, self.sent, seconds)
            stats.s.route_proxy += 1
        if self.member is not None:
            self.member.duration_seconds_sum += seconds
        log = self.location.access_log
        if log is not None:
            method, _, rest = self.request_line().partition(" ")
            log.log(self.conn.client_text(), method, rest.rpartition(" ")[0], "HTTP/1.1" if self.http11 else "HTTP/1.0",
                    self.status, self.sent, int(seconds * 1e6), "", "", self.location.new_request_id())
        return 0

    cdef int drop_upstream(self) except -1:
        cdef UpstreamConnection up = self.up
        if up is not None:
            self.up = None
            self.member.active -= 1
            up.owner = None
            up.close()
        if self.retrying:
            self.retrying = False
            self.location.retrying -= 1
        return 0


cdef class HealthProbe(UpstreamOwner):
    """One active health check on the data path (ProxyLocation.probe): the
    same connect, keep-alive pool, timeouts and response parser as a
    proxied request, so a server passes only if it answers the proxy the
    way a request would be answered. Not counted as a request of the
    member, and its failures are the active check's verdict, not passive
    health's."""

    cdef int start(self) except -1:
        cdef UpstreamConnection up
        try:
            up = self.location.connection_to(self.member, False)  # a race is retried
        except OSError as e:
            return self.finish(0, f"connect: {e.strerror or e}")
        self.up = up
        self.status = 0
        up.start_exchange(self)
        up.parser.request_was_head = False
        up.send(self.request)
        up.flush()
        if self.up is up:
            up.arm_read()
        return 0

    cdef int finish(self, int status, str why) except -1:
        done = self.done
        if done is None:
            return 0
        self.done = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        done(status, why)
        return 0

    cdef int drop(self) except -1:
        cdef UpstreamConnection up = self.up
        if up is not None:
            self.up = None
            up.close()
        return 0

    def timed_out(self):
        self.timer = None
        self.drop()
        self.finish(0, "timed out")

    def abort(self):
        self.done = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.drop()

    cdef bint kept_alive_race(self, UpstreamConnection up):
        """The server closed a kept-alive connection as the probe was sent:
        nothing was processed, the server did nothing wrong; once more on a
        new connection."""
        if self.retried or up.exchanges <= 1 or up.got_bytes:
            return False
        self.retried = True
        return True

    cdef int upstream_ready(self, UpstreamConnection up) except -1:
        return 0

    cdef int upstream_drained(self, UpstreamConnection up) except -1:
        return 0

    cdef int upstream_failed(self, UpstreamConnection up, UpFailure failure, str why) except -1:
        if up is not self.up:
            return 0
        self.up = None
        if failure == UF_RESET and self.kept_alive_race(up) and self.done is not None:
            return self.start()
        return self.finish(0, why)

    cdef int upstream_readable(self, UpstreamConnection up) except -1:
        cdef ResponseParser p = up.parser
        cdef int ev
        while self.up is up:
            try:
                ev = p.next_event()
            except ParseError as e:
                self.drop()
                return self.finish(0, f"invalid response: {e}")
            if ev == EV_NEED_DATA:
                if up.eof:
                    if p.state == ST_UNTIL_CLOSE:
                        p.state = ST_END
                        continue
                    self.drop()
                    if self.kept_alive_race(up) and self.done is not None:
                        return self.start()
                    return self.finish(0, "the server closed the connection"
                                       + (" before answering" if not up.got_bytes else " inside a response"))
                return 0
            if ev == EV_HEAD:
                self.status = p.head.status
            elif ev == EV_END:
                if self.status < 200:
                    continue  # an interim response: the final one follows
                self.up = None
                if (p.info.flags & FC_RESP_KEEP_ALIVE) and not (p.info.flags & FC_RESP_UNTIL_CLOSE):
                    up.release()
                else:
                    up.close()
                return self.finish(self.status, f"status {self.status}")
            # EV_BODY: the body is not the check's business
        return 0
