"""Layout of a worker's stats block: one shared memory page per worker,
written by the worker's core (fastcore._core.connection / gateway), read by
the arbiter for heartbeats, /metrics and /status. All fields are native
unsigned 64-bit integers; the C struct fc_worker_stats_t in
fastcore/_core/includes/stats.h has the same fields in the same order.
"""
import struct

# request-duration histogram bucket upper bounds, seconds (+Inf is implicit last)
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

FIELDS = (
    "heartbeat_ns",        # CLOCK_MONOTONIC ns of the worker loop's last iteration
    "pid",
    "started_ns",          # CLOCK_REALTIME ns when the worker booted
    "requests",            # requests completed (responses handed over)
    "status_1xx", "status_2xx", "status_3xx", "status_4xx", "status_5xx",
    "route_wsgi", "route_static", "route_proxy", "route_asgi",
    "bytes_sent",          # response bytes (head + body) queued for clients
    "connections_open",
    "connections_total",
    *(f"duration_le_{i}" for i in range(len(DURATION_BUCKETS))),
    "duration_inf",        # requests slower than the last bucket
    "duration_sum_us",     # sum of request durations, microseconds
    "draining",            # 1 while the worker finishes in-flight requests before exiting
    "overloaded",          # 1 while accept fails for lack of descriptors (until one succeeds again)
    "overload_refused",    # clients answered 503 at accept because the worker had no descriptor for them
    "app_overloaded",      # 1 while max_pending requests wait for an application thread (more are refused)
    "limit_refused_max_pending",     # requests answered 503 because max_pending already waited for the application
    "limit_refused_min_body_rate",   # requests answered 408 because their body arrived slower than min_body_rate
    # requests the limits refused, by reason (allow/deny 403, rate 429, conn 503) ...
    "limit_refused_deny", "limit_refused_rate", "limit_refused_conn",
    # ... and those a dry run let through but would have refused
    "limit_dry_run_deny", "limit_dry_run_rate", "limit_dry_run_conn",
)
INDEX = {name: i for i, name in enumerate(FIELDS)}
SIZE = 8 * len(FIELDS)
STRUCT = struct.Struct(f"={len(FIELDS)}Q")


def pack(**values):
    """A stats block holding `values` (other fields 0): what a worker's core
    writes, for tools and tests that stand in for one."""
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise KeyError(f"not stats fields: {sorted(unknown)}")
    block = bytearray(SIZE)
    STRUCT.pack_into(block, 0, *(values.get(name, 0) for name in FIELDS))
    return block


def read(buffer):
    """A dict of every field from a stats block (bytes-like or mmap)."""
    return dict(zip(FIELDS, STRUCT.unpack_from(buffer, 0)))
