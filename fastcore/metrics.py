"""Prometheus exposition and /status, from the workers' stats blocks.

The inputs are plain data: `workers` is a list of dicts as returned by
`fastcore.stats_layout.read()`, one per live worker, to which the arbiter
adds what only it knows, the worker's `slot` and that slot's `restarts`;
`arbiter` holds the arbiter's own counters. Nothing here touches shared memory or processes, so
the arbiter decides when to read and these functions only shape the result.

Counters are summed over the live workers. A worker that exits takes its
counts with it, which Prometheus reads as a counter reset; an arbiter that
wants monotonic counters across restarts passes the sums of the exited
workers' last stats as `arbiter["retired"]` (a dict with the same field
names), and they are added in.

The stats blocks are written while we read them, so fields of one block may
be a few requests apart. The histogram's `_count` is therefore the sum of
its own buckets, not the `requests` field: `le="+Inf"` always equals
`_count`, as the format requires.
"""
import time

from fastcore.stats_layout import DURATION_BUCKETS

__all__ = ["render_prometheus", "render_status", "retire_worker_stats", "CONTENT_TYPE"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
ROUTES = ("wsgi", "static", "proxy", "asgi")
# reasons of fastcore_limit_refused_total for the refusals that protect the
# server itself (no dry run for them), each counted in the stats field
# limit_refused_<reason>
SERVER_REFUSAL_REASONS = ("max_pending", "min_body_rate")
LIMIT_REASONS = ("deny", "rate", "conn")
_BUCKET_FIELDS = (*(f"duration_le_{i}" for i in range(len(DURATION_BUCKETS))), "duration_inf")
_LE_LABELS = (*(repr(float(bound)) for bound in DURATION_BUCKETS), "+Inf")
# fields that only grow in a worker's life: carried over from exited workers
COUNTER_FIELDS = (
    "requests",
    *(f"status_{cls}" for cls in STATUS_CLASSES),
    *(f"route_{route}" for route in ROUTES),
    "overload_refused",
    *(f"limit_refused_{reason}" for reason in SERVER_REFUSAL_REASONS),
    *(f"limit_refused_{reason}" for reason in LIMIT_REASONS),
    *(f"limit_dry_run_{reason}" for reason in LIMIT_REASONS),
    "bytes_sent",
    "connections_total",
    *_BUCKET_FIELDS,
    "duration_sum_us",
)


def retire_worker_stats(retired, stats):
    """Fold an exited worker's last stats into `retired` (a dict, updated in place).

    The arbiter calls this when it reaps a worker, before the stats block is
    reused, and passes `retired` as `arbiter["retired"]` to render_prometheus.
    """
    for field in COUNTER_FIELDS:
        retired[field] = retired.get(field, 0) + stats[field]
    return retired


def _total(workers, field, retired):
    return sum(worker[field] for worker in workers) + retired.get(field, 0)


def _family(lines, name, kind, help_text, samples):
    """Append one metric family: HELP, TYPE, then (suffix, labels, value) samples."""
    lines.append(f"# HELP {name} {help_text}")
    lines.append(f"# TYPE {name} {kind}")
    for suffix, labels, value in samples:
        label_text = "{" + ",".join(f'{key}="{val}"' for key, val in labels) + "}" if labels else ""
        lines.append(f"{name}{suffix}{label_text} {value}")


def render_prometheus(workers, arbiter):
    """The text exposition format (0.0.4) of the server, summed over workers."""
    retired = arbiter.get("retired") or {}
    lines = []

    def total(field):
        return _total(workers, field, retired)

    _family(lines, "fastcore_requests_total", "counter",
            "Requests completed, by response status class.",
            [("", [("status_class", cls)], total(f"status_{cls}")) for cls in STATUS_CLASSES])
    _family(lines, "fastcore_requests_by_route_total", "counter",
            "Requests completed, by the kind of location that served them.",
            [("", [("route", route)], total(f"route_{route}")) for route in ROUTES])

    cumulative = 0
    histogram = []
    for field, le in zip(_BUCKET_FIELDS, _LE_LABELS):
        cumulative += total(field)
        histogram.append(("_bucket", [("le", le)], cumulative))
    histogram.append(("_sum", [], repr(total("duration_sum_us") / 1e6)))
    histogram.append(("_count", [], cumulative))
    _family(lines, "fastcore_request_duration_seconds", "histogram",
            "Time from a request's first byte to its response handed over, in seconds.",
            histogram)

    _family(lines, "fastcore_open_connections", "gauge",
            "Client connections open now.",
            [("", [], sum(worker["connections_open"] for worker in workers))])
    _family(lines, "fastcore_connections_total", "counter",
            "Client connections accepted.",
            [("", [], total("connections_total"))])
    _family(lines, "fastcore_sent_bytes_total", "counter",
            "Response bytes (head and body) sent to clients.",
            [("", [], total("bytes_sent"))])
    _family(lines, "fastcore_overload_refused_total", "counter",
            "Clients answered 503 at accept because their worker was out of file descriptors.",
            [("", [], total("overload_refused"))])
    _family(lines, "fastcore_limit_refused_total", "counter",
            "Requests refused, by reason: the per-client limits deny (403, allow/deny), rate (429, "
            "limit_req_rate), conn (503, limit_conn), with dry_run=\"true\" for those limit_dry_run let through "
            "that would have been refused; and the server's own protection max_pending (503, the application's "
            "queue was full) and min_body_rate (408, the body came too slowly).",
            [("", [("reason", reason), ("dry_run", "false")], total(f"limit_refused_{reason}"))
             for reason in LIMIT_REASONS] +
            [("", [("reason", reason), ("dry_run", "true")], total(f"limit_dry_run_{reason}"))
             for reason in LIMIT_REASONS] +
            [("", [("reason", reason), ("dry_run", "false")], total(f"limit_refused_{reason}"))
             for reason in SERVER_REFUSAL_REASONS])
    _family(lines, "fastcore_overloaded_workers", "gauge",
            "Workers whose accept fails now for lack of file descriptors.",
            [("", [], sum(1 for worker in workers if worker["overloaded"]))])
    _family(lines, "fastcore_app_overloaded_workers", "gauge",
            "Workers whose application queue is full now (max_pending requests wait for a thread).",
            [("", [], sum(1 for worker in workers if worker.get("app_overloaded")))])
    _family(lines, "fastcore_workers", "gauge",
            "Worker processes alive now.",
            [("", [], len(workers))])
    _family(lines, "fastcore_worker_restarts_total", "counter",
            "Workers the arbiter started again after one died or was killed for missing its heartbeat.",
            [("", [], int(arbiter["worker_restarts"]))])
    _family(lines, "fastcore_worker_timeouts_total", "counter",
            "Workers the arbiter killed for missing their heartbeat.",
            [("", [], int(arbiter["worker_timeouts"]))])
    upstreams = arbiter.get("upstreams")
    if upstreams:
        servers = [(pool["name"], server) for pool in upstreams for server in pool["servers"]]
        for name, kind, key, help_text in (
                ("fastcore_upstream_requests_total", "counter", "requests", "Requests sent to an upstream server."),
                ("fastcore_upstream_failures_total", "counter", "failures",
                 "Tries that failed at an upstream server (connect error, timeout, invalid response)."),
                ("fastcore_upstream_retries_total", "counter", "retries",
                 "Retries an upstream server took for a try that failed at another."),
                ("fastcore_upstream_active", "gauge", "active", "Requests at an upstream server now."),
                ("fastcore_upstream_request_duration_seconds_sum", "counter", "duration_seconds_sum",
                 "Total time of the requests an upstream server answered, in seconds (with "
                 "fastcore_upstream_requests_total, the mean)."),
        ):
            _family(lines, name, kind, help_text,
                    [("", [("pool", pool), ("server", server["address"])], server[key]) for pool, server in servers])
        _family(lines, "fastcore_upstream_up", "gauge",
                "1 while an upstream server takes traffic from at least one worker.",
                [("", [("pool", pool), ("server", server["address"])], int(server["state"] == "up"))
                 for pool, server in servers])
    return "\n".join(lines) + "\n"


def render_status(arbiter_pid, started, workers, now=None):
    """The /status document: the arbiter and one entry per live worker.

    `started` and `now` are Unix timestamps in seconds (time.time()); a
    worker's age comes from its `started_ns` (CLOCK_REALTIME ns), null while
    the worker has not written it yet. `slot` and `restarts` (workers
    replaced in that slot, the per-slot part of fastcore_worker_restarts_total)
    come from the arbiter: null and 0 for a worker dict without them.
    """
    if now is None:
        now = time.time()
    entries = []
    for worker in workers:
        started_ns = worker["started_ns"]
        entries.append({
            "pid": worker["pid"],
            "slot": worker.get("slot"),
            "restarts": worker.get("restarts", 0),
            "age_seconds": round(max(0.0, now - started_ns / 1e9), 3) if started_ns else None,
            "requests": worker["requests"],
            "open_connections": worker["connections_open"],
            "draining": bool(worker["draining"]),
            "overloaded": bool(worker["overloaded"]),
            "app_overloaded": bool(worker.get("app_overloaded")),
        })
    return {
        "arbiter_pid": arbiter_pid,
        "uptime_seconds": round(max(0.0, now - started), 3),
        "workers": entries,
    }
