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

A probe (`Prober`) is a small HTTP/1.1 client driven by loop callbacks, never
blocking: non-blocking connect (TCP or unix socket), wait writable, check
SO_ERROR, send `GET <path> HTTP/1.1` with Host and `Connection: close`, read
until the status line ends, compare the status with health_status, close.
One timer of health_timeout covers the whole exchange: a server that accepts
and then says nothing is as dead as one that refuses. Only the status line
is read; the body is not our business and closing right after it costs the
server nothing but a reset.

Rounds: every next_delay(health_interval) the prober probes each member of
the pool that has no probe in flight (draining members are skipped, and
members added by a reload or DNS are picked up at the next round). The delay
carries JITTER either way: many workers, or many proxies, started together
would otherwise probe in lock step forever and hit the upstreams in bursts.
Each worker probes on its own: verdicts are per worker, like HAProxy's
per-process checks before it shared them; a shared verdict is a later step.

Invariants: at most one probe per member in flight; every probe ends exactly
once (answer, error or timeout) and then owns no descriptor, watcher or timer.
"""
import errno
import logging
import random
import re
import socket

from fastcore.proxy.balancer import parse_address

__all__ = ["HealthCheck", "Prober", "next_delay", "JITTER"]

error_log = logging.getLogger("fastcore.error")

# Each delay is the interval times a factor drawn uniformly from
# [1 - JITTER, 1 + JITTER]: enough to spread probes started together over
# several intervals within a few rounds, small enough that the interval
# still means what the operator wrote.
JITTER = 0.15

# The longest status line we wait for. RFC 9112's status-line is
# "HTTP/1.1 200 reason" and reasons are short; more than this without a
# CRLF is not an HTTP server answering.
MAX_STATUS_LINE = 1024

# RFC 9112 section 4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
# (the SP before an empty reason is sometimes missing in the wild: allowed)
STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([1-5][0-9][0-9])(?: [^\r\n]*)?\r\n")


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
            host = "localhost" if member.address.startswith("unix:") else member.address
        return (f"GET {self.path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
                f"User-Agent: fastcore-health-check\r\nAccept: */*\r\n\r\n").encode("ascii")


class Prober:
    """Probes every member of `pool` with `check`, on `loop` (a fastcore Loop,
    or anything with time, add_reader, add_writer, remove_reader,
    remove_writer and call_later returning an object with cancel()).
    start() begins the rounds; stop() ends them and aborts probes in flight."""

    def __init__(self, loop, pool, check, random_source=None):
        self.loop = loop
        self.pool = pool
        self.check = check
        self.random = random_source or random.Random()
        self.in_flight = {}  # member address -> Probe
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
            probe = Probe(self, member)
            self.in_flight[member.address] = probe
            probe.start()

    def _probe_done(self, probe, ok, reason):
        if self.in_flight.get(probe.member.address) is probe:
            del self.in_flight[probe.member.address]
        if not self.running:
            return
        before = probe.member.health
        if self.check.record(probe.member, ok, self.loop.time()):
            log = error_log.info if ok else error_log.warning
            log("pool %s: member %s health %s -> %s (%s)", self.pool.name, probe.member.address,
                before, probe.member.health, reason)


class Probe:
    """One health probe of one member: connect, send, read the status line."""

    def __init__(self, prober, member):
        self.prober = prober
        self.loop = prober.loop
        self.member = member
        self.sock = None
        self.fd = -1
        self.timer = None
        self.outgoing = b""
        self.incoming = b""
        self.finished = False

    def start(self):
        try:
            family, address = parse_address(self.member.address)
            self.sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        except (ValueError, OSError) as exc:
            self._finish(False, f"cannot probe: {exc}")
            return
        self.fd = self.sock.fileno()
        self.outgoing = self.prober.check.request_for(self.member)
        self.timer = self.loop.call_later(self.prober.check.timeout, self._on_timeout)
        code = self.sock.connect_ex(address)
        if code in (0, errno.EINPROGRESS):
            self.loop.add_writer(self.fd, self._on_connected)
        else:
            # loopback and unix sockets refuse at once; a unix listener with a
            # full backlog answers EAGAIN: both mean "not taking connections"
            self._finish(False, f"connect: {errno.errorcode.get(code, code)}")

    def _on_connected(self):
        self.loop.remove_writer(self.fd)
        code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self._finish(False, f"connect: {errno.errorcode.get(code, code)}")
            return
        self._send()

    def _send(self):
        try:
            sent = self.sock.send(self.outgoing)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._finish(False, f"send: {exc}")
            return
        self.outgoing = self.outgoing[sent:]
        if self.outgoing:
            self.loop.add_writer(self.fd, self._on_writable)
        else:
            self.loop.add_reader(self.fd, self._on_readable)

    def _on_writable(self):
        self.loop.remove_writer(self.fd)
        self._send()

    def _on_readable(self):
        try:
            data = self.sock.recv(MAX_STATUS_LINE)
        except BlockingIOError:
            return
        except OSError as exc:
            self._finish(False, f"read: {exc}")
            return
        if not data:
            self._finish(False, "closed before the status line")
            return
        self.incoming += data
        end = self.incoming.find(b"\r\n")
        if end < 0:
            if len(self.incoming) >= MAX_STATUS_LINE:
                self._finish(False, "no status line")
            return
        match = STATUS_LINE.match(self.incoming, 0, end + 2)
        if match is None:
            self._finish(False, f"not an HTTP/1.x status line: {self.incoming[:end][:80]!r}")
            return
        status = int(match.group(1))
        self._finish(self.prober.check.accepts(status), f"status {status}")

    def _on_timeout(self):
        self.timer = None
        self._finish(False, f"no status line within {self.prober.check.timeout:g}s")

    def abort(self):
        """Ends the probe without a verdict (the prober is stopping)."""
        self._release()

    def _finish(self, ok, reason):
        if self.finished:
            return
        self._release()
        self.prober._probe_done(self, ok, reason)

    def _release(self):
        """Gives back the timer, the watchers and the socket, once."""
        if self.finished:
            return
        self.finished = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.sock is not None:
            # the watchers are keyed by descriptor number: remove them while
            # the number is still ours, before close() lets it be reused
            self.loop.remove_reader(self.fd)
            self.loop.remove_writer(self.fd)
            self.sock.close()
            self.sock = None
