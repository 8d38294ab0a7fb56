# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Per-client limits, checked in the core before a location's handler.

Theory of operation
-------------------
A location with limits has its handler wrapped in a Limiter (the worker
does it, fastcore/worker.py); a location without has none, so an unlimited
request pays nothing. At the request head the Limiter reads the client the
connection has resolved (realip.pyx: the peer, or the address a trusted
proxy named) and decides, in this order:

1. deny, then allow (CIDR sets): 403. Any allow entry refuses everyone
   else.
2. limit_conn, then limit_req_rate/burst, in the shared table
   (src_c/fc_limits.h, one for all workers): 503 when the client has
   limit_conn requests in progress; 429 with Retry-After above rate and
   burst; within the burst, the request is held (Connection.hold_request)
   until the rate lets it through, unless nodelay.
3. otherwise the location's handler takes the request (conn.handler).

A request counted against limit_conn is released once when it ends
(Connection.release_limit: its response handed over, an error answered, or
the connection gone). A dry run refuses and holds nothing: it counts in the
stats what it would have refused and logs it.

Refusals go through Connection.send_error (the response and its
accounting), are counted in the worker's stats by reason
(fastcore_limit_refused_total) and logged at most once a second per
location, with how many were refused since the last line.
"""
import logging

from cpython.buffer cimport PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from libc.stdint cimport uint8_t, uint64_t

from fastcore._core.connection cimport Connection, RequestHandler, client_ready
from fastcore._core.parser cimport is_head_request
from fastcore._core.realip cimport NetworkSet, address_text
from fastcore._core.stats cimport WorkerStats
from fastcore._core.includes.fc_limits cimport (
    FC_LIMIT_CONN, FC_LIMIT_DELAY, FC_LIMIT_PASS, FC_LIMIT_RATE, FC_LIMIT_WAYS, FC_LIMITS_MAGIC,
    fc_limit_key, fc_limit_key_t, fc_limit_request, fc_limit_release, fc_limit_result_t, fc_limit_rule_t,
    fc_limits_capacity, fc_limits_init, fc_limits_size, fc_limits_t, fc_limits_used,
)
from fastcore._core.includes.fc_realip cimport fc_addr_parse

cdef object error_log = logging.getLogger("fastcore.error")

cdef enum Reason:
    R_DENY = 1
    R_RATE = 2
    R_CONN = 3

cdef dict REASON_NAMES = {R_DENY: "deny", R_RATE: "rate", R_CONN: "conn"}
cdef dict REASON_TEXTS = {
    R_DENY: "this client is not allowed here",
    R_RATE: "too many requests from this client, retry later",
    R_CONN: "too many requests in progress from this client",
}


def table_size(size_t entries):
    """Bytes of a table for `entries` clients (fc_limits_size)."""
    return fc_limits_size(entries)


cdef class LimitTable:
    """The shared table in a writable buffer (an anonymous shared mmap made
    by the arbiter before fork; any bytearray for one process alone)."""

    def __cinit__(self, buffer, size_t entries=0, uint64_t seed=0):
        """entries > 0: set the table up (in the arbiter, once); 0: use the
        one already set up in buffer (in a worker)."""
        PyObject_GetBuffer(buffer, &self.view, PyBUF_WRITABLE)
        self.owner = buffer
        self.t = <fc_limits_t *>self.view.buf
        if entries:
            if <size_t>self.view.len < fc_limits_size(entries):
                self.t = NULL
                PyBuffer_Release(&self.view)
                raise ValueError(f"limits buffer too small: {self.view.len} < {fc_limits_size(entries)}")
            fc_limits_init(self.t, entries, seed)
        elif <size_t>self.view.len < sizeof(fc_limits_t) or self.t.magic != FC_LIMITS_MAGIC or \
                <size_t>self.view.len < fc_limits_size(self.t.buckets * FC_LIMIT_WAYS):
            self.t = NULL
            PyBuffer_Release(&self.view)
            raise ValueError("not a limits table")

    def __dealloc__(self):
        if self.t != NULL:
            PyBuffer_Release(&self.view)

    @property
    def capacity(self):
        return fc_limits_capacity(self.t)

    @property
    def evictions(self):
        return self.t.evictions

    def used(self):
        """(entries in use, those holding requests in progress): a scan."""
        cdef size_t held = 0
        cdef size_t used = fc_limits_used(self.t, &held)
        return used, held

    def request(self, str address, unsigned zone, double now, double rate=0, unsigned burst=0, unsigned conn=0,
                bint dry_run=False):
        """For tests: one request of address (text) in zone at now (seconds)
        -> ("pass" | "delay" | "rate" | "conn", wait in seconds)."""
        cdef fc_limit_rule_t rule
        cdef uint64_t wait = 0
        cdef fc_limit_result_t result
        rule.rate = <uint64_t>(rate * 1000 + 0.5)
        rule.burst = <uint64_t>burst * 1000
        rule.conn = conn
        rule.dry_run = dry_run
        result = fc_limit_request(self.t, self.key(address, zone), <uint64_t>(now * 1000), &rule, &wait)
        return ("pass", "delay", "rate", "conn")[<int>result], wait / 1000.0

    def release(self, str address, unsigned zone):
        """For tests: a request counted by request() has ended."""
        fc_limit_release(self.t, self.key(address, zone))

    cdef fc_limit_key_t key(self, str address, unsigned zone) except *:
        cdef uint8_t addr[16]
        cdef bytes raw = address.encode("ascii")
        if fc_addr_parse(raw, len(raw), addr) != 0:
            raise ValueError(f"not an address: {address!r}")
        return fc_limit_key(addr, zone)


cdef class Limiter(RequestHandler):

    def __cinit__(self, RequestHandler inner, LimitTable table, options, unsigned zone, str name):
        """options: the location's settings (limit_req_rate, limit_req_burst,
        limit_req_nodelay, limit_conn, allow, deny, limit_dry_run), checked by
        fastcore.config; zone: this location's number (from 1), distinct per
        location; table: the shared table (None if only allow/deny are set)."""
        if zone < 1:
            raise ValueError("zones are numbered from 1")
        self.inner = inner
        self.allow = NetworkSet(options.allow)
        self.deny = NetworkSet(options.deny)
        self.rule.rate = <uint64_t>(options.limit_req_rate * 1000 + 0.5)
        self.rule.burst = <uint64_t>options.limit_req_burst * 1000
        self.rule.conn = options.limit_conn
        self.rule.dry_run = options.limit_dry_run
        self.nodelay = options.limit_req_nodelay
        self.dry_run = options.limit_dry_run
        self.zone = zone
        self.name = name
        if (self.rule.rate or self.rule.conn) and table is None:
            raise ValueError("a rate or connection limit needs the shared table")
        self.table = table if (self.rule.rate or self.rule.conn) else None

    cdef int on_head(self, Connection conn) except -1:
        cdef const uint8_t *client = conn.client_addr
        cdef fc_limit_key_t key
        client_ready(conn)
        cdef fc_limit_result_t result
        cdef uint64_t wait = 0
        cdef int reason = 0
        if conn.limit_passed:
            # a held request's head, parsed again: already let through
            conn.limit_passed = False
        else:
            if (self.deny.count and self.deny.contains(client)) or \
                    (self.allow.count and not self.allow.contains(client)):
                reason = R_DENY
            elif self.table is not None:
                key = fc_limit_key(client, self.zone)
                result = fc_limit_request(self.table.t, key, <uint64_t>(conn.loop.now * 1000), &self.rule, &wait)
                if self.rule.conn and (result == FC_LIMIT_PASS or result == FC_LIMIT_DELAY or self.dry_run):
                    conn.limit_table = self.table.t
                    conn.limit_key = key
                if result == FC_LIMIT_RATE:
                    reason = R_RATE
                elif result == FC_LIMIT_CONN:
                    reason = R_CONN
                elif result == FC_LIMIT_DELAY and not self.nodelay and not self.dry_run:
                    conn.hold_request(wait / 1000.0)
                    return 0
            if reason:
                self.refuse(conn, reason, wait)
                if not self.dry_run:
                    return 0
        conn.handler = self.inner
        return self.inner.on_head(conn)

    cdef int refuse(self, Connection conn, int reason, unsigned long long wait_ms) except -1:
        """Counts and logs a refusal and, unless a dry run, answers it."""
        cdef WorkerStats stats = conn.server.stats
        cdef double now = conn.loop.now
        if stats is not None:
            if self.dry_run:
                if reason == R_DENY:
                    stats.s.limit_dry_run_deny += 1
                elif reason == R_RATE:
                    stats.s.limit_dry_run_rate += 1
                else:
                    stats.s.limit_dry_run_conn += 1
            elif reason == R_DENY:
                stats.s.limit_refused_deny += 1
            elif reason == R_RATE:
                stats.s.limit_refused_rate += 1
            else:
                stats.s.limit_refused_conn += 1
        self.unlogged += 1
        if now >= self.log_after:
            error_log.warning("limit %s %s: %s %s (%d refusal%s since the last line)", REASON_NAMES[reason],
                              self.name, "dry run, would refuse" if self.dry_run else "refused",
                              address_text(conn.client_addr), self.unlogged, "" if self.unlogged == 1 else "s")
            self.unlogged = 0
            self.log_after = now + 1.0
        if self.dry_run:
            return 0
        if reason == R_DENY:
            conn.send_error(403, REASON_TEXTS[reason], is_head_request(conn.parser))
        elif reason == R_RATE:
            # whole seconds, rounded up: a client retrying after it passes
            conn.send_error(429, REASON_TEXTS[reason], is_head_request(conn.parser), True,
                            b"Retry-After: %d\r\n" % ((wait_ms + 999) // 1000))
        else:
            conn.send_error(503, REASON_TEXTS[reason], is_head_request(conn.parser))
        return 0
