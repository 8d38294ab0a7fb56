# Interface of fastcore._core.upstream: outbound HTTP/1.1 connections to the
# servers of a proxy pool, and the per-server keep-alive pools of a worker.
#
# An UpstreamConnection is a Stream with a ResponseParser. While it carries
# an exchange, it reports to its owner (an UpstreamOwner: the proxy's
# exchange) through the four calls below, and nothing else; between
# exchanges it sits in its server's IdlePool. Ownership: the connection owns
# its descriptor (Stream); the pool holds idle connections; an owner holds
# the connection of its exchange and must release() or close() it, once.
from libc.stdint cimport uint32_t
from fastcore._core.loop cimport DeadlineQueue, Loop
from fastcore._core.parser cimport FieldArray, ResponseParser
from fastcore._core.stream cimport Stream
from fastcore._core.includes.fc_tls cimport fc_tls_client_t

cdef enum UpState:
    U_CONNECTING     # connect() in progress, then (tls set) the TLS handshake; output waits in the queue
    U_ACTIVE         # carries an exchange
    U_IDLE           # kept alive in its pool, watched for the server's close
    U_CLOSED

cdef enum UpFailure:
    UF_CONNECT       # connect refused, unreachable, or connect_timeout
    UF_RESET         # the connection broke (reset, or closed before a whole response)
    UF_TIMEOUT       # read_timeout or send_timeout
    UF_INVALID       # the bytes are not a valid HTTP/1.1 response


cdef class UpstreamOwner:
    cdef int upstream_ready(self, UpstreamConnection up) except -1
    cdef int upstream_readable(self, UpstreamConnection up) except -1
    cdef int upstream_drained(self, UpstreamConnection up) except -1
    cdef int upstream_failed(self, UpstreamConnection up, UpFailure failure, str why) except -1


cdef class UpstreamTimeouts:
    """The deadline queues of one proxy location (their durations are its settings)."""
    cdef DeadlineQueue connect
    cdef DeadlineQueue read
    cdef DeadlineQueue send
    cdef DeadlineQueue idle


cdef class TLSClient:
    """The TLS settings of a proxy location toward its https:// servers,
    made into an OpenSSL context once (owned, freed with the object)."""
    cdef fc_tls_client_t *client


cdef class TLSPeer:
    """One https:// server of a location: the name its certificate must
    carry (and SNI), and the slot of its last session (owned, freed with
    the object). Its connections hold it: OpenSSL writes the slot while
    they read."""
    cdef TLSClient client
    cdef bytes server_name
    cdef void *session


cdef class IdlePool:
    cdef list idle                 # UpstreamConnection in U_IDLE, most recently used last (LIFO)
    cdef size_t limit              # keepalive: idle connections kept
    cdef readonly unsigned long long opened    # connections opened to this server
    cdef readonly unsigned long long reused    # exchanges carried by a kept connection

    cdef UpstreamConnection take(self, bint peek)
    cdef int put(self, UpstreamConnection up) except -1
    cdef int forget(self, UpstreamConnection up) except -1


cdef class UpstreamConnection(Stream):
    cdef UpState state
    cdef ResponseParser parser
    cdef UpstreamOwner owner
    cdef IdlePool pool
    cdef UpstreamTimeouts timeouts
    cdef unsigned long exchanges   # exchanges carried, this one included
    cdef unsigned long max_exchanges  # keepalive_requests
    cdef bint got_bytes            # a byte of the current exchange's response arrived
    cdef bint eof                  # the server closed its side
    cdef bint request_sent         # the owner queued the whole request: the read timeout applies once it is out
    cdef size_t read_size
    cdef TLSPeer tls_peer          # an https:// server: TLS once connected; None for a plain one
    cdef bint tls_want_write       # the handshake waits for the socket to be writable
    cdef str write_error           # a write found the server gone: reported after the batch (_on_deferred)

    cdef int start_exchange(self, UpstreamOwner owner) except -1
    cdef int release(self) except -1
    cdef int arm_read(self) except -1
    cdef int _on_connected(self) except -1
    cdef int _handshake(self) except -1
    cdef int _established(self) except -1
    cdef int _read_tls(self) except -1
    cdef int _got(self, ssize_t n) except -1      # a read's outcome, plain or TLS
    cdef bint _idle_open(self)
    cdef int _on_readable(self) except -1
    cdef int _on_writable(self) except -1
    cdef int send_span(self, const char *at, size_t n) except -2   # -1: peer gone (closed)
    cdef int flush(self) except -1
    cdef int _fail(self, UpFailure failure, str why) except -1
    cdef int _update(self) except -1
    cdef int _on_closed(self) except -1


cdef UpstreamConnection connect_to(Loop loop, object family, object sockaddr, IdlePool pool,
                                   UpstreamTimeouts timeouts, dict parser_limits, size_t read_size,
                                   unsigned long max_exchanges, TLSPeer tls_peer)
