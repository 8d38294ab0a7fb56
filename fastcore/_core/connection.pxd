# Interface of fastcore._core.connection: the server side of HTTP/1.1 on
# the loop. A Listener accepts; each Connection runs the per-connection
# state machine (reading head, reading body, running the handler, writing,
# keep-alive idle, closing) and hands complete requests to a RequestHandler.
# The handler produces the response through send()/send_file() and ends it
# with end_response(); it is told on_close() if the connection dies first.
from libc.stdint cimport uint8_t, uint32_t
from fastcore._core.includes.syscalls cimport sockaddr_storage, socklen_t
from fastcore._core.loop cimport DeadlineQueue, Handle, Loop, TimedHandle
from fastcore._core.parser cimport RequestParser
from fastcore._core.buffer cimport FileSegment, OutputQueue
from fastcore._core.stream cimport Stream
from fastcore._core.stats cimport WorkerStats
from fastcore._core.realip cimport ClientResolver
from fastcore._core.includes.fc_limits cimport fc_limit_key_t, fc_limits_t
from fastcore._core.tls cimport TLSContext

cdef enum ConnState:
    S_HEAD       # waiting for or reading a request head
    S_BODY       # reading a request body
    S_APP        # the handler owns the exchange (app running or producing)
    S_IDLE       # keep-alive, nothing buffered, no read buffer held
    S_CLOSING    # flushing a last response, then close
    S_LINGER     # response sent, write side shut, discarding input briefly
    S_TUNNEL     # after a 101 (proxied Upgrade): bytes both ways, to and from the handler
    S_HELD       # a request head held back by a rate limit's delay (hold_request), reading nothing
    S_HANDSHAKE  # a TLS listener's connection before its handshake is done (under header_timeout)
    S_CLOSED




cdef class RequestHandler:
    # the bandwidth limit of this handler's responses (limit_rate,
    # limit_rate_after of its location); 0: none
    cdef double limit_rate
    cdef size_t limit_rate_after

    cdef int on_head(self, Connection conn) except -1
    cdef int on_body(self, Connection conn, const char *at, size_t n) except -1
    cdef int on_end(self, Connection conn) except -1
    cdef int on_writable(self, Connection conn) except -1
    cdef int on_close(self, Connection conn) except -1
    cdef int on_tunnel_data(self, Connection conn, const char *at, size_t n) except -1
    # (method, target, version) of the current request, for the log of a
    # refusal once the head's spans are gone; None when the handler keeps none
    cdef tuple refused_request(self, Connection conn)


cdef class Server:
    cdef Loop loop
    cdef RequestHandler handler
    cdef object config
    cdef DeadlineQueue header_queue
    cdef DeadlineQueue body_queue
    cdef DeadlineQueue keepalive_queue
    cdef DeadlineQueue send_queue
    cdef DeadlineQueue linger_queue
    cdef DeadlineQueue tunnel_queue
    cdef readonly size_t connections
    cdef size_t max_connections
    cdef size_t read_size
    cdef size_t high_water
    cdef double min_body_rate    # bytes a second a request body must average, once body_rate_grace has passed; 0: none
    cdef double body_rate_grace
    cdef list listeners
    cdef readonly bint accepting
    cdef readonly bint draining
    cdef dict parser_limits
    cdef readonly unsigned long long requests
    cdef set live                # connections, for draining and counting
    cdef readonly WorkerStats stats
    cdef public unsigned long long request_limit   # 0: none
    cdef public object on_request_limit            # called once when requests reach request_limit
    cdef double drain_idle_deadline                # while draining, idle connections live until then
    cdef int spare_fd                              # reserved descriptor, spent to answer 503 when out of them
    cdef double accept_backoff                     # seconds accept pauses when out of descriptors
    cdef readonly bint saturated                   # every application thread busy: not accepting
    cdef readonly bint overloaded                  # accept failed for lack of descriptors, none accepted since
    cdef readonly unsigned long long refused       # clients answered 503 for lack of descriptors
    cdef public object access_log                  # fastcore.logs.AccessLog for refused requests, or None
    cdef unsigned long refusal_log_rate            # error-log lines a second for refusals (refusal_log_rate)
    cdef double refusal_second                     # the second (loop clock) refusals are being counted in
    cdef unsigned long refusal_lines               # lines written in it
    cdef unsigned long refusals_unlogged           # refusals beyond the rate since the last summary
    cdef ClientResolver resolver                   # forwarded_allow_ips + real_ip_header; None: trust no peer

    cdef int add_connection(self, int fd, Listener listener, sockaddr_storage *addr, socklen_t addr_len) except -1
    cdef int connection_closed(self, Connection conn) except -1
    cdef int pause_accepting(self) except -1
    cdef int resume_accepting(self) except -1
    cdef int reserve_spare(self) except -1
    cdef bint may_log_refusal(self, double now) except -1
    cdef int out_of_descriptors(self, Listener listener, str reason) except -1


cdef class Listener(Handle):
    cdef Server server
    cdef uint32_t events         # EPOLLIN, with EPOLLEXCLUSIVE when workers share the socket
    cdef object sock
    cdef readonly bint is_unix
    cdef readonly dict environ   # per-listener WSGI constants (SERVER_NAME, SERVER_PORT)
    cdef readonly TLSContext tls_context   # a TLS listener's certificates; None: plain
    cdef RequestHandler handler  # what this listener's requests go to (the server's, or an HTTPS redirect)

    cdef int refuse_waiting(self) except -1


cdef class Connection(Stream):
    cdef Server server
    cdef readonly Listener listener
    cdef RequestParser parser
    cdef ConnState state
    cdef RequestHandler handler  # of the current request (a Router picks it in on_head)
    cdef object exchange         # the handler's per-request state
    cdef bint request_keep_alive
    cdef bint got_bytes          # some bytes of the current head have arrived
    cdef bint processing         # inside _process (not reentrant)
    cdef bint flush_scheduled    # a deferred flush will run after this batch
    cdef bint response_started   # the current request's final response has begun (send / send_file)
    cdef sockaddr_storage peer
    cdef socklen_t peer_len
    cdef double body_since       # loop time the current body's rate is measured from (its head, or a resumed read)
    cdef size_t body_received    # bytes read since body_since
    cdef object peer_host_str
    cdef object peer_port_str
    cdef object peer_client      # (host, port) of the peer for ASGI scopes, made when first asked
    # who the client is (realip.pyx): the peer, unless a trusted peer names
    # another in real_ip_header; decided once per request, when first asked
    # (client_ready), while its head's spans are valid
    cdef uint8_t peer_addr[16]   # the peer, 16 bytes, IPv4 mapped (zeros: unix socket)
    cdef uint8_t client_addr[16] # the client of the current request, same form
    cdef readonly bint peer_trusted      # the peer is in forwarded_allow_ips (decided at accept)
    cdef bint client_pending     # a trusted peer's request whose client is not resolved yet
    cdef bint client_forwarded   # client_addr came from the field, not the peer
    cdef readonly int forwarded_proto    # X-Forwarded-Proto of a trusted peer: FC_PROTO_HTTP(S), 0: none
    cdef object client_str       # its text, made when first asked
    # a request counted by the limits table (limits.pyx), released once when it ends
    cdef fc_limits_t *limit_table   # NULL: none held
    cdef fc_limit_key_t limit_key
    cdef bint limit_passed       # a delayed request's head is parsed again: the limits let it through already
    # TLS (self.tls, Stream): what the handshake waits for, and the session's
    # environ keys, made when the application first asks (tls_environ)
    cdef bint tls_want_write
    cdef dict tls_env
    cdef dict tls_scope_ext      # the ASGI "tls" extension, made at the first ASGI request that asks

    cdef int _on_readable(self) except -1
    cdef int _handshake(self) except -1
    cdef dict tls_environ(self)
    cdef dict tls_scope(self)
    cdef bint _body_too_slow(self) noexcept
    cdef int _on_writable(self) except -1
    cdef int _process(self) except -1
    cdef int _process_events(self) except -1
    cdef int _handler_failed(self, str event, object error) except -1
    cdef int _update(self) except -1
    cdef int _on_closed(self) except -1
    cdef int send(self, bytes data) except -1
    cdef int send_interim(self, bytes data) except -1
    cdef int send_file(self, FileSegment segment) except -1
    cdef bint may_keep_alive(self) noexcept
    cdef int start_tunnel(self) except -1
    cdef int tunnel_active(self) except -1
    cdef int pause_reading(self) except -1
    cdef int resume_reading(self) except -1
    cdef int end_response(self, bint keep_alive) except -1
    cdef int send_error(self, int status, str message, bint no_body=*, bint head_spans=*, bytes extra=*) except -1
    cdef int _log_refusal(self, int status, str message, bytes answer, bint head_spans) except -1
    cdef tuple _head_request(self)
    cdef int _begin_linger(self) except -1
    cdef int _go_idle(self) except -1
    cdef int _peer_strings(self) except -1
    cdef int resolve_client(self) except -1   # use client_ready()
    cdef str client_text(self)
    cdef void release_limit(self) noexcept
    cdef int hold_request(self, double delay) except -1


cdef inline int client_ready(Connection conn) except -1:
    """Makes client_addr, client_forwarded and forwarded_proto those of the
    current request: resolved at the first call after its head (from a
    trusted peer; the peer's own need nothing). Call it where the head's
    spans are valid (on_head); client_text() calls it too. A request whose
    client nobody asks for (a static file without an access log) pays
    nothing for it."""
    if conn.client_pending:
        conn.resolve_client()
    return 0
