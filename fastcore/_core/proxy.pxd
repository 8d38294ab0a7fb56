# Interface of fastcore._core.proxy: the proxy location, a RequestHandler
# that forwards each request under its prefix to a server of its pool and
# streams the response back. One ProxyExchange per request holds the client
# connection and the upstream connection; the balancer (fastcore.proxy,
# Python compiled with its own .pxd) is called once per request, in on_head,
# to pick the server, and its members' counters are C fields here.
from fastcore._core.connection cimport Connection, RequestHandler
from fastcore._core.includes.fc_http cimport fc_header_t, fc_span_t
from fastcore._core.loop cimport Loop
from fastcore._core.router cimport Router
from fastcore._core.upstream cimport (
    IdlePool, TLSClient, UpFailure, UpstreamConnection, UpstreamOwner, UpstreamTimeouts,
)
from fastcore.proxy.balancer cimport Member, Pool


cdef struct HeadWriter:
    char *data                  # malloc'd, grown as heads need, freed with the location
    size_t len
    size_t cap

cdef enum HostMode:
    HOST_PASS                   # the client's Host
    HOST_UPSTREAM               # the server's address
    HOST_FIXED                  # host_line


cdef class ProxyLocation(RequestHandler):
    cdef readonly str prefix
    cdef Loop loop
    cdef object hash_header                 # the header a hash pool keys on, kept for retries
    cdef bint hash_pool                     # balance hash: pick() reads the request
    cdef bytes prefix_bytes
    cdef Router router
    cdef readonly Pool pool                 # the balancer: pick() once per request
    cdef dict servers                       # member address -> (family, sockaddr, IdlePool, TLSPeer or None)
    cdef TLSClient tls_client               # the context of the https:// servers, made with the first one
    cdef object tls_options                 # (verify, ca_certs, certfile, keyfile) to make it
    cdef str tls_server_name                # tls_server_name: the name every https:// server is checked for
    cdef UpstreamTimeouts timeouts
    cdef dict parser_limits                 # of the response parsers
    cdef size_t read_size
    cdef size_t high_water
    cdef unsigned long keepalive_requests
    cdef size_t keepalive
    cdef int retries
    cdef bint strip_prefix
    cdef HostMode host_mode
    cdef bytes host_line                    # HOST_FIXED: "Host: NAME\r\n"
    cdef dict peers                         # address text -> as bytes for a forwarding field
    cdef HeadWriter writer                  # where request and response heads are written, one at a time
    cdef bint websocket
    cdef bint forwarded                     # send RFC 7239 Forwarded
    cdef bint via                           # add our Via both ways
    cdef readonly unsigned long long active        # exchanges in flight (the retry budget's base)
    cdef readonly unsigned long long retrying      # retries in flight
    cdef readonly unsigned long long retries_total
    cdef public object access_log
    cdef public object new_request_id

    cdef tuple server_for(self, Member member)
    cdef tuple new_server(self, Member member)
    cdef TLSClient tls_context(self)
    cdef bytes address_bytes(self, str host)
    cdef UpstreamConnection connection_to(self, Member member, bint peek)
    cdef bytes request_head(self, Connection conn, ProxyExchange ex)
    cdef int put_forwarded(self, HeadWriter *w, fc_header_t *fields, size_t count, bint listed,
                           bytes node, fc_span_t host, fc_span_t proto) except -1
    cdef int fail(self, Connection conn, int status, str message) except -1


cdef class ProxyExchange(UpstreamOwner):
    cdef Connection conn
    cdef ProxyLocation location
    cdef UpstreamConnection up
    cdef Member member
    cdef int tries                  # tries started (a kept-alive race's second go not counted)
    cdef list tried                 # members that failed this request (made at the first retry)
    cdef bint replayable            # what was sent upstream is all kept: a retry may send it again
    cdef list replay                # the body sent upstream while replayable (the head is `head`), or None
    cdef size_t replay_size
    cdef bint may_outgrow_replay    # a body that may not fit REPLAY_MAX: peek at a kept-alive connection first
    cdef bint idempotent
    cdef bint chunked_up            # the request body is re-chunked to the upstream
    cdef bint body_started          # some request body has been read from the client
    cdef bint request_done          # the whole request has been read from the client
    cdef bint response_started      # the response head has gone to the client
    cdef bint head_held             # the response head is in the location's writer, not yet queued
    cdef bint chunked_down          # the response body is re-chunked to the client
    cdef bint client_keep
    cdef bint is_head
    cdef bint http11
    cdef bint retrying
    cdef int status
    cdef double began
    cdef unsigned long long sent    # response bytes queued for the client
    cdef bytes head                 # the request head sent upstream
    cdef object view                # SavedView for a retry's pick
    cdef bytes upgrade              # the Upgrade field of a request asking for a tunnel, else None
    cdef bint tunnel                # after the 101: bytes both ways

    cdef int switching_protocols(self) except -1
    cdef int begin_tunnel(self) except -1
    cdef int tunnel_from_upstream(self) except -1

    cdef bytes member_host(self)
    cdef str request_line(self)
    cdef int keep_for_replay(self, bytes chunk) except -1

    cdef int start_try(self) except -1
    cdef int forward_body(self, const char *at, size_t n) except -1
    cdef int run_response(self) except -1
    cdef int response_head(self) except -1
    cdef int queue_held_head(self) except -1
    cdef int response_end(self) except -1
    cdef int after_failure(self, UpFailure failure, str why, bint counts) except -1
    cdef int finish(self, bint keep) except -1
    cdef int account(self) except -1
    cdef int drop_upstream(self) except -1


cdef class HealthProbe(UpstreamOwner):
    cdef ProxyLocation location
    cdef Member member
    cdef bytes request
    cdef object done                # done(status, reason), once; None once called or aborted
    cdef object timer               # the loop's call_later handle for the timeout
    cdef UpstreamConnection up
    cdef int status
    cdef bint retried               # once more after a kept-alive race

    cdef int start(self) except -1
    cdef int finish(self, int status, str why) except -1
    cdef int drop(self) except -1
    cdef bint kept_alive_race(self, UpstreamConnection up)
