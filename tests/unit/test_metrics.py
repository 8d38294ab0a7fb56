"""fastcore.metrics: Prometheus exposition summed over workers, /status."""

import math

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fastcore import stats_layout
from fastcore.metrics import render_prometheus, render_status, retire_worker_stats

BOUNDS = stats_layout.DURATION_BUCKETS
ARBITER = {"worker_restarts": 3, "worker_timeouts": 1}
STARTED_NS = 1_800_000_000 * 10**9  # a CLOCK_REALTIME stamp, ns


def worker_stats(**values):
    """A worker dict as the arbiter gets it: packed into a block, read back."""
    return stats_layout.read(stats_layout.pack(**values))


def first_worker():
    return worker_stats(
        pid=101, started_ns=STARTED_NS, requests=10,
        status_2xx=7, status_3xx=1, status_4xx=2,
        route_wsgi=6, route_static=4,
        bytes_sent=5000, connections_open=2, connections_total=8,
        duration_le_0=4, duration_le_3=3, duration_le_12=2, duration_inf=1,
        duration_sum_us=9_500_000,
    )


def second_worker():
    return worker_stats(
        pid=102, started_ns=STARTED_NS + 30 * 10**9, requests=5,
        status_1xx=1, status_2xx=2, status_5xx=2,
        route_wsgi=1, route_proxy=4,
        bytes_sent=700, connections_open=1, connections_total=4,
        duration_le_0=1, duration_le_12=3, duration_inf=1,
        duration_sum_us=20_000_250, draining=1,
    )


def parse(text):
    """{sample name: {frozenset(labels): value}} and {family name: type}."""
    samples, types = {}, {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return samples, types


def value(samples, name, **labels):
    return samples[name][frozenset(labels.items())]


@pytest.fixture
def two_workers():
    return parse(render_prometheus([first_worker(), second_worker()], ARBITER))


def test_metrics_exposition_parses_with_expected_types(two_workers):
    _, types = two_workers
    assert types == {
        "fastcore_requests": "counter",
        "fastcore_requests_by_route": "counter",
        "fastcore_request_duration_seconds": "histogram",
        "fastcore_open_connections": "gauge",
        "fastcore_connections": "counter",
        "fastcore_sent_bytes": "counter",
        "fastcore_workers": "gauge",
        "fastcore_worker_restarts": "counter",
        "fastcore_worker_timeouts": "counter",
        "fastcore_overload_refused": "counter",
        "fastcore_overloaded_workers": "gauge",
        "fastcore_limit_refused": "counter",
    }


def test_metrics_every_family_has_help_and_type():
    text = render_prometheus([first_worker()], ARBITER)
    names = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    helps = [line.split()[2] for line in text.splitlines() if line.startswith("# HELP ")]
    assert names == helps and len(names) == 12
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_metrics_status_classes_summed_over_workers(two_workers):
    samples, _ = two_workers
    by_class = {cls: value(samples, "fastcore_requests_total", status_class=cls)
                for cls in ("1xx", "2xx", "3xx", "4xx", "5xx")}
    assert by_class == {"1xx": 1, "2xx": 9, "3xx": 1, "4xx": 2, "5xx": 2}


def test_metrics_routes_summed_over_workers(two_workers):
    samples, _ = two_workers
    assert {route: value(samples, "fastcore_requests_by_route_total", route=route)
            for route in ("wsgi", "static", "proxy")} == {"wsgi": 7, "static": 4, "proxy": 4}


def test_metrics_connections_bytes_workers_and_arbiter_counters(two_workers):
    samples, _ = two_workers
    assert value(samples, "fastcore_open_connections") == 3
    assert value(samples, "fastcore_connections_total") == 12
    assert value(samples, "fastcore_sent_bytes_total") == 5700
    assert value(samples, "fastcore_workers") == 2
    assert value(samples, "fastcore_worker_restarts_total") == 3
    assert value(samples, "fastcore_worker_timeouts_total") == 1


def test_metrics_histogram_buckets_cumulative(two_workers):
    samples, _ = two_workers
    buckets = samples["fastcore_request_duration_seconds_bucket"]
    les = sorted((float(dict(labels)["le"]), count) for labels, count in buckets.items())
    assert [le for le, _ in les] == [*BOUNDS, math.inf]
    counts = [count for _, count in les]
    # per-bucket: le_0 = 5, le_3 = 3, le_12 = 5, inf = 2
    expected = [5, 5, 5, 8, 8, 8, 8, 8, 8, 8, 8, 8, 13, 15]
    assert counts == expected
    assert counts == sorted(counts)


def test_metrics_histogram_inf_equals_count_and_sum_in_seconds(two_workers):
    samples, _ = two_workers
    assert value(samples, "fastcore_request_duration_seconds_bucket", le="+Inf") == 15
    assert value(samples, "fastcore_request_duration_seconds_count") == 15
    assert value(samples, "fastcore_request_duration_seconds_sum") == pytest.approx(29.50025)


def test_metrics_histogram_count_from_buckets_when_fields_torn():
    # the block is read while the worker writes: `requests` may already count
    # a request the histogram does not yet hold; the histogram must agree with itself
    torn = worker_stats(pid=103, requests=4, duration_le_2=3)
    samples, _ = parse(render_prometheus([torn], ARBITER))
    assert value(samples, "fastcore_request_duration_seconds_count") == 3
    assert value(samples, "fastcore_request_duration_seconds_bucket", le="+Inf") == 3


def test_metrics_le_labels_as_prometheus_writes_them():
    text = render_prometheus([first_worker()], ARBITER)
    assert 'fastcore_request_duration_seconds_bucket{le="0.0005"} 4\n' in text
    assert 'fastcore_request_duration_seconds_bucket{le="1.0"} ' in text
    assert 'fastcore_request_duration_seconds_bucket{le="+Inf"} 10\n' in text


def test_metrics_no_workers_all_zero():
    samples, _ = parse(render_prometheus([], {"worker_restarts": 0, "worker_timeouts": 0}))
    assert value(samples, "fastcore_workers") == 0
    assert value(samples, "fastcore_request_duration_seconds_count") == 0
    assert value(samples, "fastcore_requests_total", status_class="2xx") == 0


def test_metrics_retired_workers_keep_counters_monotonic():
    before = parse(render_prometheus([first_worker(), second_worker()], ARBITER))[0]
    retired = retire_worker_stats({}, second_worker())
    after = parse(render_prometheus([first_worker()], {**ARBITER, "retired": retired}))[0]
    for name in ("fastcore_requests_total", "fastcore_requests_by_route_total",
                 "fastcore_request_duration_seconds_bucket", "fastcore_request_duration_seconds_sum",
                 "fastcore_request_duration_seconds_count", "fastcore_connections_total",
                 "fastcore_sent_bytes_total"):
        assert after[name] == before[name], name
    # gauges describe the live workers only
    assert value(after, "fastcore_open_connections") == 2
    assert value(after, "fastcore_workers") == 1


def test_metrics_status_fields():
    now = STARTED_NS / 1e9 + 90.5
    status = render_status(4242, now - 3600, [first_worker(), second_worker()], now=now)
    assert status == {
        "arbiter_pid": 4242,
        "uptime_seconds": 3600.0,
        "workers": [
            {"pid": 101, "slot": None, "restarts": 0, "age_seconds": 90.5, "requests": 10, "open_connections": 2,
             "draining": False, "overloaded": False},
            {"pid": 102, "slot": None, "restarts": 0, "age_seconds": 60.5, "requests": 5, "open_connections": 1,
             "draining": True, "overloaded": False},
        ],
    }


def test_metrics_status_slot_and_restarts_from_the_arbiter():
    workers = [dict(first_worker(), slot=0, restarts=2), dict(second_worker(), slot=1, restarts=0)]
    status = render_status(4242, 0.0, workers, now=STARTED_NS / 1e9)
    assert [(w["pid"], w["slot"], w["restarts"]) for w in status["workers"]] == [(101, 0, 2), (102, 1, 0)]
    # the extra keys change nothing in the exposition
    assert render_prometheus(workers, ARBITER) == render_prometheus([first_worker(), second_worker()], ARBITER)


def test_metrics_status_worker_not_booted_has_no_age():
    status = render_status(1, 0.0, [worker_stats(pid=7)], now=10.0)
    assert status["workers"][0]["age_seconds"] is None


def test_metrics_status_now_defaults_to_wall_clock():
    import time

    status = render_status(1, time.time() - 5, [worker_stats(pid=7, started_ns=time.time_ns() - 2 * 10**9)])
    assert 5 <= status["uptime_seconds"] < 6
    assert 2 <= status["workers"][0]["age_seconds"] < 3


def test_metrics_overload_counted_and_retired_kept():
    retired = {}
    retire_worker_stats(retired, worker_stats(pid=5, overload_refused=4))
    workers = [worker_stats(pid=6, overload_refused=3, overloaded=1), worker_stats(pid=7)]
    samples, _ = parse(render_prometheus(workers, dict(ARBITER, retired=retired)))
    assert value(samples, "fastcore_overload_refused_total") == 7
    assert value(samples, "fastcore_overloaded_workers") == 1
    document = render_status(1, 0.0, workers, now=1.0)
    assert [w["overloaded"] for w in document["workers"]] == [True, False]
