/* fc_stats.h: the stats block of one worker, in memory shared with the
 * arbiter (one page per worker, mapped before fork). The worker writes,
 * the arbiter reads; every field is a native uint64_t, so a torn read is
 * at worst one field a moment old. fastcore/stats_layout.py lists the same
 * fields in the same order (tests/unit/test_stats.py checks it). */
#ifndef FC_STATS_H
#define FC_STATS_H

#include <stdint.h>

#define FC_DURATION_BUCKETS 13

typedef struct {
    uint64_t heartbeat_ns;
    uint64_t pid;
    uint64_t started_ns;
    uint64_t requests;
    uint64_t status_1xx;
    uint64_t status_2xx;
    uint64_t status_3xx;
    uint64_t status_4xx;
    uint64_t status_5xx;
    uint64_t route_wsgi;
    uint64_t route_static;
    uint64_t route_proxy;
    uint64_t route_asgi;
    uint64_t bytes_sent;
    uint64_t connections_open;
    uint64_t connections_total;
    uint64_t duration_le_0;
    uint64_t duration_le_1;
    uint64_t duration_le_2;
    uint64_t duration_le_3;
    uint64_t duration_le_4;
    uint64_t duration_le_5;
    uint64_t duration_le_6;
    uint64_t duration_le_7;
    uint64_t duration_le_8;
    uint64_t duration_le_9;
    uint64_t duration_le_10;
    uint64_t duration_le_11;
    uint64_t duration_le_12;
    uint64_t duration_inf;
    uint64_t duration_sum_us;
    uint64_t draining;
    uint64_t overloaded;
    uint64_t overload_refused;
    uint64_t app_overloaded;
    uint64_t limit_refused_max_pending;
    uint64_t limit_refused_min_body_rate;
    /* requests the limits refused (limits.pyx), by reason; and those a dry
     * run let through that it would have refused */
    uint64_t limit_refused_deny;
    uint64_t limit_refused_rate;
    uint64_t limit_refused_conn;
    uint64_t limit_dry_run_deny;
    uint64_t limit_dry_run_rate;
    uint64_t limit_dry_run_conn;
} fc_worker_stats_t;

#endif /* FC_STATS_H */
