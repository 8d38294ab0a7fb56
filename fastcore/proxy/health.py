"""Active health checks: is each member of a pool answering its health URL?

Theory of operation
-------------------
A `HealthCheck` holds the settings (health_path, health_interval,
health_timeout, health_status, health_rise, health_fall) and the verdict
rules; a `Prober` sends the probes on the worker's event loop.

Verdicts follow HAProxy. `record(member, ok, now)` keeps two streaks on the
member (consecutive passes, consecutive fails) and moves `member.health`:

    unknown --1 fail--> failing --rise passes--> passing --fall fails--> failing
    unknown --rise passes--> passing

- A member starts "unknown" and the balancer treats it as available: a pool
  that refused traffic until the first round of probes had finished would
  turn every start and every reload into a burst of 503s, and passive health
  (max_fails) still guards it meanwhile. HAProxy's default (`init-state up`)
  does the same, including the other half of it: the first failed probe of an
  unknown member marks it failing at once, since it has never shown it works.
- `rise` and `fall` keep one lost probe or one lucky answer from flapping a
  member in or out.
- Coming back from "failing" sets `member.recovered_at`, which starts the
  pool's slow start (balancer.py). unknown -> passing does not: the member
  was never out.

A probe goes through the proxy's own data path (ProxyLocation.probe in
fastcore/_core/proxy.pyx): a kept-alive connection of the member's pool or a
new one, the same connect, send and read timeouts, the response parsed by the
same response parser, the connection back in the pool afterwards when the
answer allows. So a member passes only if it answers a request the way the
proxy needs it answered: a server whose listener accepts but whose responses
are malformed fails its check, and a probe also keeps one connection to each
member warm. One timer of health_timeout covers the whole exchange: a server
that accepts and then says nothing is as dead as one that refuses. Probes are
not counted as the member's requests, and their failures move the active
verdict only, never passive health's max_fails.

Rounds: every next_delay(health_interval) the prober probes each member of
the pool that has no probe in flight (draining members are skipped, and
members added by a reload or DNS are picked up at the next round). The delay
carries JITTER either way: many workers, or many proxies, started together
would otherwise probe in lock step forever and hit the upstreams in bursts.
Each worker probes on its own: verdicts are per worker, like HAProxy's
per-process checks before it shared them; a shared verdict is a later step.

Invariants: at most one probe per member in flight; every probe ends exactly
once (answer, error or timeout) and then holds no timer, and its connection
is back in the member's keep-alive pool or closed.
"""
import logging
import random

from fastcore.proxy.balancer import split_scheme

__all__ = ["HealthCheck", "Prober", "next_delay", "JITTER"]

error_log = logging.getLogger("fastcore.error")

# Each delay is the interval times a factor drawn uniformly from
# [1 - JITTER, 1 + JITTER]: enough to spread probes started together over
# several intervals within a few rounds, small enough that the interval
# still means what the operator wrote.
JITTER = 0.15


def next_delay(interval, random_source=random):
    """`interval` seconds give or take JITTER of it, drawn afresh each time."""
    return interval * random_source.uniform(1.0 - JITTER, 1.0 + JITTER)


def parse_status_ranges(spec):
    """health_status as ((low, high), ...): "200-399", "200,204,300-399",
    or a list of ints and such strings."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    ranges = []
    for item in items:
        if isinstance(item, int):
            low = high = item
        else:
            text = str(item).strip()
            low_text, dash, high_text = text.partition("-")
            if not low_text.strip().isdigit() or (dash and not high_text.strip().isdigit()):
                raise ValueError(f"health_status: {text!r} is not a status or a range like 200-399")
            low = int(low_text)
            high = int(high_text) if dash else low
        if not 100 <= low <= high <= 599:
            raise ValueError(f"health_status: {item!r} is outside 100-599 or reversed")
        ranges.append((low, high))
    if not ranges:
        raise ValueError("health_status: empty")
    return tuple(ranges)


class HealthCheck:
    """The active check's settings and its verdict rules.

    path      the request target probed (health_path)
    interval  seconds between probes of a member, before jitter (health_interval)
    timeout   seconds one probe may take from connect to status line (health_timeout)
    status    statuses that pass: "200-399", "200,204" or a list (health_status)
    rise      consecutive passes that make a member passing (health_rise)
    fall      consecutive fails that make a passing member failing (health_fall)
    host      the Host header; default: the member's address
    """

    def __init__(self, path="/health", interval=5.0, timeout=2.0, status="200-399", rise=2, fall=3, host=None):
        if not path.startswith("/") or any(c in path for c in " \r\n\t"):
            raise ValueError(f"health_path must be an origin-form target like /health, not {path!r}")
        if interval <= 0 or timeout <= 0:
            raise ValueError("health_interval and health_timeout must be positive")
        if rise < 1 or fall < 1:
            raise ValueError("health_rise and health_fall must be at least 1")
        if host is not None and any(c in host for c in " \r\n\t"):
            raise ValueError(f"health check host {host!r} has whitespace")
        self.path = path
        self.interval = float(interval)
        self.timeout = float(timeout)
        self.status = status
        self.status_ranges = parse_status_ranges(status)
        self.rise = rise
        self.fall = fall
        self.host = host

    @classmethod
    def from_settings(cls, settings):
        """From a mapping with the setting names (health_path, ...); missing keys take the defaults."""
        names = {"health_path": "path", "health_interval": "interval", "health_timeout": "timeout",
                 "health_status": "status", "health_rise": "rise", "health_fall": "fall",
                 "health_host": "host"}
        return cls(**{names[key]: value for key, value in settings.items() if key in names})

    def accepts(self, status):
        return any(low <= status <= high for low, high in self.status_ranges)

    def record(self, member, ok, now):
        """Counts one probe result; returns True when member.health changed."""
        if ok:
            member.consecutive_fails = 0
            member.consecutive_passes += 1
            if member.health != "passing" and member.consecutive_passes >= self.rise:
                if member.health == "failing":
                    member.recovered_at = now
                member.health = "passing"
                return True
            return False
        member.consecutive_passes = 0
        member.consecutive_fails += 1
        if member.health == "unknown" or (member.health == "passing" and member.consecutive_fails >= self.fall):
            member.health = "failing"
            return True
        return False

    def request_for(self, member):
        """The probe's request bytes for this member."""
        host = self.host
        if host is None:
            address = split_scheme(member.address)[1]
            host = "localhost" if address.startswith("unix:") else address
        return (f"GET {self.path} HTTP/1.1\r\nHost: {host}\r\n"
                f"User-Agent: fastcore-health-check\r\nAccept: */*\r\n\r\n").encode("ascii")


class Prober:
    """Probes every member of `pool` with `check`, on `loop` (a fastcore Loop,
    or anything with time() and call_later returning an object with
    cancel()), through `send(member, request, timeout, done)`: the proxy
    location's own upstream path (ProxyLocation.probe), which calls
    done(status, reason) once (status 0: no valid answer) and returns an
    object with abort(). start() begins the rounds; stop() ends them and
    aborts the probes in flight."""

    def __init__(self, loop, pool, check, send, random_source=None):
        self.loop = loop
        self.pool = pool
        self.check = check
        self.send = send
        self.random = random_source or random.Random()
        self.in_flight = {}  # member address -> the transport's probe
        self.round_timer = None
        self.running = False

    def start(self):
        """The first round comes after a random part of one interval, so that
        workers started together do not probe together from the start."""
        if self.running:
            return
        self.running = True
        self.round_timer = self.loop.call_later(self.random.uniform(0.0, self.check.interval), self._run_round)

    def stop(self):
        self.running = False
        if self.round_timer is not None:
            self.round_timer.cancel()
            self.round_timer = None
        for probe in list(self.in_flight.values()):
            probe.abort()
        self.in_flight.clear()

    def _run_round(self):
        self.round_timer = None
        if not self.running:
            return
        self.round_timer = self.loop.call_later(next_delay(self.check.interval, self.random), self._run_round)
        for member in list(self.pool.members):
            if member.state == "draining" or member.address in self.in_flight:
                continue
            self._probe(member)

    def _probe(self, member):
        address = member.address
        finished = []  # done() may come before send() returns (a refused connect)

        def done(status, reason):
            finished.append(True)
            if self.in_flight.get(address) is probe:
                del self.in_flight[address]
            self._probe_done(member, status, reason)

        probe = None
        probe = self.send(member, self.check.request_for(member), self.check.timeout, done)
        if not finished:
            self.in_flight[address] = probe

    def _probe_done(self, member, status, reason):
        if not self.running:
            return
        ok = status != 0 and self.check.accepts(status)
        before = member.health
        if self.check.record(member, ok, self.loop.time()):
            log = error_log.info if ok else error_log.warning
            log("pool %s: member %s health %s -> %s (%s)", self.pool.name, member.address,
                before, member.health, reason)
