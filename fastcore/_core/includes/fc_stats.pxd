# Declarations of src_c/fc_stats.h (the shared stats block of a worker).
from libc.stdint cimport uint64_t


cdef extern from "fc_stats.h" nogil:
    enum:
        FC_DURATION_BUCKETS

    ctypedef struct fc_worker_stats_t:
        uint64_t heartbeat_ns
        uint64_t pid
        uint64_t started_ns
        uint64_t requests
        uint64_t status_1xx
        uint64_t status_2xx
        uint64_t status_3xx
        uint64_t status_4xx
        uint64_t status_5xx
        uint64_t route_wsgi
        uint64_t route_static
        uint64_t route_proxy
        uint64_t route_asgi
        uint64_t bytes_sent
        uint64_t connections_open
        uint64_t connections_total
        uint64_t duration_le_0
        uint64_t duration_le_1
        uint64_t duration_le_2
        uint64_t duration_le_3
        uint64_t duration_le_4
        uint64_t duration_le_5
        uint64_t duration_le_6
        uint64_t duration_le_7
        uint64_t duration_le_8
        uint64_t duration_le_9
        uint64_t duration_le_10
        uint64_t duration_le_11
        uint64_t duration_le_12
        uint64_t duration_inf
        uint64_t duration_sum_us
        uint64_t draining
        uint64_t overloaded
        uint64_t overload_refused
        uint64_t app_overloaded
        uint64_t limit_refused_max_pending
        uint64_t limit_refused_min_body_rate
        uint64_t limit_refused_deny
        uint64_t limit_refused_rate
        uint64_t limit_refused_conn
        uint64_t limit_dry_run_deny
        uint64_t limit_dry_run_rate
        uint64_t limit_dry_run_conn
