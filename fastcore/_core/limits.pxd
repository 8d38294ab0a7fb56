# Interface of fastcore._core.limits: per-client limits in front of a
# location's handler. A LimitTable is the shared mapping (fc_limits.h) made
# by the arbiter before fork; the object keeps the buffer alive. A Limiter
# is a RequestHandler that checks a request's client (Connection.client_addr)
# at its head and either refuses it (send_error: 403, 429, 503), holds it
# (Connection.hold_request) or hands it to `inner`, which gets the rest of
# the request's calls.
from libc.stdint cimport uint32_t
from fastcore._core.connection cimport Connection, RequestHandler
from fastcore._core.realip cimport NetworkSet
from fastcore._core.includes.fc_limits cimport fc_limit_key_t, fc_limit_rule_t, fc_limits_t


cdef class LimitTable:
    cdef fc_limits_t *t
    cdef object owner            # the buffer's exporter (keeps the memory mapped)
    cdef Py_buffer view

    cdef fc_limit_key_t key(self, str address, unsigned zone) except *


cdef class Limiter(RequestHandler):
    cdef readonly RequestHandler inner
    cdef LimitTable table        # None when the rule needs no table (allow/deny only)
    cdef NetworkSet allow
    cdef NetworkSet deny
    cdef fc_limit_rule_t rule
    cdef uint32_t zone           # the location's number in the table's keys (from 1)
    cdef bint nodelay
    cdef bint dry_run
    cdef readonly str name       # the location, for the log
    cdef double log_after        # refusals are logged once a second at most
    cdef unsigned long unlogged  # refusals since the last line

    cdef int refuse(self, Connection conn, int reason, unsigned long long wait_ms) except -1
