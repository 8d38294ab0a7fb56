"""Which upstream server takes the next proxied request: the balancer.

Theory of operation
-------------------
A `Pool` holds the `Member`s of one `[[proxy]]` location. The compiled data
path calls `Pool.pick(view, now, exclude)` once per request (and once more per
retry, with the members already tried in `exclude`), then talks to the member
it got. Everything per request that is not the pick itself is a plain integer
attribute the core updates without calling Python code:

    member.active += 1; member.requests += 1     when it sends to the member
    member.active -= 1                           when that exchange ends
    member.retries += 1                          when a retry leaves this member
    member.failures += 1; member.note_failure(now)
                                                 on a connect error, a timeout
                                                 or an invalid response

`note_failure` is the only call on a request's path, and only on failures.
`note_success(now)` is optional (see `Member.note_success`).

A pick goes through three filters, in this order:

1. availability: a member is *healthy* unless it is draining, passively down
   (max_fails failures within fail_timeout put it down for fail_timeout, as
   nginx does) or failing its active health check (health.py). A healthy
   member is *available* unless it holds `max_conns` requests already.
   Members in `exclude` are skipped (a retry goes elsewhere).
2. groups and panic: primary members take the traffic; backup members only
   when no primary is available. When fewer than `panic_threshold` of the
   primary members are healthy and no backup is, the pool is *in panic*:
   - panic="all" (Envoy's panic mode): balance over every primary member,
     healthy or not. The reasoning is Envoy's: when most of a pool looks dead
     the health signal is more likely wrong (a bad check, a network blip
     between the proxy and the checks) than the pool, and piling the whole
     load on the few survivors would take them down too.
   - panic="refuse": pick returns None and the core answers 503 at once,
     rather than overloading the survivors. Choose it when the upstreams
     cannot take being sent traffic while they are unhealthy.
   panic_threshold=0 turns panic off: the healthy members, however few, take
   everything, which is nginx's behaviour.
3. the algorithm (`balance`) over the remaining candidates:
   - round_robin: nginx's smooth weighted round robin: each pick adds every
     candidate's weight to its running score, takes the highest score and
     subtracts the candidates' total weight from it. Weights 5,1,1 give
     a a b a c a a: the heavy member's turns are spread out, not bunched.
   - least_conn: the smallest active/weight; ties are broken by the smooth
     round robin among the tied members (nginx does the same), so an idle
     pool still rotates.
   - random_two: the power of two choices (nginx `random two least_conn`,
     Envoy's default): two distinct members drawn at random in proportion
     to their weights, the one with fewer active requests per weight wins.
     It never picks the busiest member, needs no shared counter between
     workers, and avoids the herd that least_conn causes when many workers
     see the same stale "least loaded" member.
   - hash: consistent hashing of `hash_key` (client_ip, uri or header:NAME)
     on a ring of points: each member owns POINTS_PER_WEIGHT points per unit
     of weight at fixed places derived from its address alone, so when a
     member leaves only the keys that were on it move (to the next member
     clockwise), about 1/N of them. When the member a key lands on is not
     available, the key goes to the next distinct member on the ring, and
     comes back when it recovers. The ring is rebuilt only when membership
     changes. A hash uses the configured weight, not the slow-start weight:
     moving keys back and forth while a member ramps up would defeat the
     affinity hash is used for.

Slow start: a member that comes back (its passive down period expired, or
its active check turned passing again) has `recovered_at` set; during the
next `slow_start` seconds its effective weight grows linearly from
SLOW_START_FLOOR of its weight to the full weight (HAProxy's `slowstart`,
nginx Plus's `slow_start`), so a cold server (empty caches, JIT not warm,
connection pools empty) is not handed its full share at once. The floor is
not zero because a member with no traffic would never show it works again.
Members added to a running pool (add, replace: a scale-up) ramp the same way.

Invariants:
- addresses are unique in a pool; a member object stays the same for as long
  as its address is in the pool (replace keeps it), so the core may hold it
  across a request and its counters survive reloads;
- a draining member is never picked; it stays listed (with its counters)
  until `reap()` finds it idle and drops it;
- the view handed to pick is read during the call and never kept.

Threads: a Pool belongs to one worker's loop thread; nothing here locks.
Discovery resolves on its own thread and hands `replace` to the loop.
"""
import bisect
import hashlib
import ipaddress
import random
import socket
import time

__all__ = ["Member", "Pool", "BALANCE_METHODS", "PANIC_MODES", "parse_address", "split_scheme"]

BALANCE_METHODS = ("round_robin", "least_conn", "random_two", "hash")
PANIC_MODES = ("all", "refuse")
MEMBER_STATES = ("up", "down", "draining")

# Ring points per unit of weight. The share of keys a member owns varies
# around its due share by roughly 1/sqrt(points): 160 keeps a weight-1 member
# within about 8% of it (ketama uses 160 per server for the same reason)
# while a pool of 100 members still builds its ring in milliseconds.
POINTS_PER_WEIGHT = 160

# A recovering member starts at this fraction of its weight (see the header).
SLOW_START_FLOOR = 0.05


def parse_address(address):
    """The socket family and address to connect to for a member address.

    "unix:/run/app.sock" -> (AF_UNIX, "/run/app.sock")
    "10.0.0.2:8000"      -> (AF_INET, ("10.0.0.2", 8000))
    "[::1]:8000"         -> (AF_INET6, ("::1", 8000))
    "https://10.0.0.2:8443" -> (AF_INET, ("10.0.0.2", 8443)): a TLS server
    (the scheme is the member's; "http://" is plain, as no scheme)
    Raises ValueError for anything else, a DNS name included: names are
    turned into addresses by discovery.py, never resolved on the loop."""
    _, address = split_scheme(address)
    if address.startswith("unix:"):
        path = address[len("unix:"):]
        if not path:
            raise ValueError(f"{address!r}: empty unix socket path")
        return socket.AF_UNIX, path
    if address.startswith("["):
        host, separator, port = address[1:].partition("]:")
        if not separator:
            raise ValueError(f"{address!r}: expected [IPV6]:PORT")
    else:
        host, separator, port = address.rpartition(":")
        if not separator or ":" in host:
            raise ValueError(f"{address!r}: expected HOST:PORT, [IPV6]:PORT or unix:PATH")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r}: bad port {port!r}")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{address!r}: {host!r} is not an IP address (DNS names go through discovery)") from None
    if ip.version == 6:
        if not address.startswith("["):
            raise ValueError(f"{address!r}: write an IPv6 address in brackets")
        return socket.AF_INET6, (host, int(port))
    return socket.AF_INET, (host, int(port))


def split_scheme(address):
    """(True, the rest) for an https:// address, else (False, the address
    without an http:// prefix)."""
    if address.startswith("https://"):
        return True, address[len("https://"):]
    if address.startswith("http://"):
        return False, address[len("http://"):]
    return False, address


class Member:
    """One upstream server of a pool, as the policy sees it.

    Counters the core updates directly (plain ints, no call per request):
    `active` (requests in flight), `requests` (total sent), `failures`
    (total failed), `retries` (requests that left this member for another).

    State: `state` is "up", "down" (passive health: `down_until` is when it
    may take traffic again) or "draining" (removed: no new requests). `health`
    is the active check's verdict: "unknown", "passing" or "failing".
    `recovered_at` is when it last came back (monotonic seconds, None when it
    never left), read by the slow start. `recent_failures` counts the
    failures of the current fail_timeout window. `server_name`: for an
    https:// member resolved from a DNS name, that name (its certificate's
    and SNI's), else None (the address's host)."""

    __slots__ = (
        "address", "weight", "backup", "max_conns",
        "active", "requests", "failures", "retries", "duration_seconds_sum",
        "state", "down_until", "health", "recovered_at",
        "recent_failures", "failure_window_start", "max_fails", "fail_timeout",
        "consecutive_passes", "consecutive_fails", "score", "server_name",
    )

    def __init__(self, address, weight=1, backup=False, max_conns=0, server_name=None):
        if not isinstance(weight, int) or weight < 1:
            raise ValueError(f"{address}: weight must be an integer >= 1, not {weight!r}")
        if not isinstance(max_conns, int) or max_conns < 0:
            raise ValueError(f"{address}: max_conns must be an integer >= 0, not {max_conns!r}")
        self.address = address
        self.weight = weight
        self.backup = bool(backup)
        self.max_conns = max_conns
        self.server_name = server_name
        self.active = 0
        self.requests = 0
        self.failures = 0
        self.retries = 0
        self.duration_seconds_sum = 0.0  # of the requests it answered
        self.state = "up"
        self.down_until = 0.0
        self.health = "unknown"
        self.recovered_at = None
        self.recent_failures = 0
        self.failure_window_start = 0.0
        # copied from the pool when the member joins one (Pool.add)
        self.max_fails = 1
        self.fail_timeout = 10.0
        # the active check's streaks (health.HealthCheck.record)
        self.consecutive_passes = 0
        self.consecutive_fails = 0
        # the smooth round robin's running score
        self.score = 0.0

    def __repr__(self):
        return f"<Member {self.address} {self.state} health={self.health} active={self.active}>"

    def healthy(self, now):
        """True unless draining, passively down or failing its active check.
        A passive down period that has expired ends here: the member is up
        again and its slow start begins from the moment it expired."""
        if self.state == "down":
            if now < self.down_until:
                return False
            self.state = "up"
            self.recovered_at = self.down_until
            # nginx's probation: the failure count is not cleared by the down
            # period, so one more failure within fail_timeout of its return
            # puts it straight back down (until a success or the window ends)
            self.failure_window_start = self.down_until
            self.recent_failures = max(self.max_fails - 1, 0)
        elif self.state == "draining":
            return False
        return self.health != "failing"

    def available(self, now):
        """True when pick may choose it: healthy and below max_conns."""
        if not self.healthy(now):
            return False
        return self.max_conns == 0 or self.active < self.max_conns

    def note_failure(self, now):
        """The core calls this after a connect error, a timeout or an invalid
        response from this member (it also counts `failures` itself).

        nginx's max_fails/fail_timeout: the failures are counted in a window
        that opens with the first one and lasts fail_timeout; the max_fails-th
        failure in the window marks the member down for fail_timeout.
        max_fails=0 disables it. Returns True when this failure put it down."""
        if self.max_fails == 0 or self.state != "up":
            return False
        if self.recent_failures == 0 or now - self.failure_window_start > self.fail_timeout:
            self.failure_window_start = now
            self.recent_failures = 0
        self.recent_failures += 1
        if self.recent_failures < self.max_fails:
            return False
        self.state = "down"
        self.down_until = now + self.fail_timeout
        self.recent_failures = 0
        return True

    def note_success(self, now):
        """Optional: the core need not call it. Ends the current failure
        window, so failures must come max_fails in a row, not interrupted by
        a success, to mark the member down, and a member back from a down
        period leaves its probation at once (nginx clears its count on a
        success the same way). Cheap enough to call on the first success
        after a failure, which the core sees as `recent_failures > 0` without
        a call; without it the window simply expires after fail_timeout."""
        self.recent_failures = 0


class Pool:
    """The members of one proxy location and how requests are spread over
    them. See the module docstring for the rules; the arguments:

    name             the pool's name in the admin API and metrics
    members          Member objects (addresses unique)
    balance          one of BALANCE_METHODS
    hash_key         with balance="hash": "client_ip", "uri" or "header:NAME"
    max_fails        failures within fail_timeout that mark a member down (0: never)
    fail_timeout     seconds: the failure window and the down period
    slow_start       seconds over which a recovered member's weight ramps up (0: off)
    panic            "all" or "refuse": what to do when too few members are healthy
    panic_threshold  the fraction of healthy primary members below which the
                     pool is in panic (0: never)
    """

    def __init__(self, name, members, balance="round_robin", hash_key=None, max_fails=1,
                 fail_timeout=10.0, slow_start=0.0, panic="all", panic_threshold=0.5):
        if balance not in BALANCE_METHODS:
            raise ValueError(f"pool {name}: balance must be one of {', '.join(BALANCE_METHODS)}, not {balance!r}")
        if balance == "hash":
            if hash_key is None:
                raise ValueError(f"pool {name}: balance=hash needs a hash_key")
            if hash_key not in ("client_ip", "uri") and not (hash_key.startswith("header:") and len(hash_key) > 7):
                raise ValueError(f"pool {name}: hash_key must be client_ip, uri or header:NAME, not {hash_key!r}")
        if panic not in PANIC_MODES:
            raise ValueError(f"pool {name}: panic must be one of {', '.join(PANIC_MODES)}, not {panic!r}")
        if not 0.0 <= panic_threshold <= 1.0:
            raise ValueError(f"pool {name}: panic_threshold must be within 0..1, not {panic_threshold!r}")
        if max_fails < 0 or fail_timeout <= 0 or slow_start < 0:
            raise ValueError(f"pool {name}: max_fails >= 0, fail_timeout > 0 and slow_start >= 0 are required")
        self.name = name
        self.balance = balance
        self.hash_key = hash_key
        self.hash_header = hash_key[len("header:"):] if hash_key and hash_key.startswith("header:") else None
        self.max_fails = max_fails
        self.fail_timeout = float(fail_timeout)
        self.slow_start = float(slow_start)
        self.panic = panic
        self.panic_threshold = float(panic_threshold)
        # a Random of its own: tests seed it, and no other user of the
        # module-level generator can make its draws predictable
        self.random = random.Random()
        self.members = []
        self.by_address = {}
        self.rings = None  # (primary ring, backup ring), built on demand
        for member in members:
            self._join(member)

    # -- membership -----------------------------------------------------------

    def _join(self, member):
        if member.address in self.by_address:
            raise ValueError(f"pool {self.name}: {member.address} is already a member")
        member.max_fails = self.max_fails
        member.fail_timeout = self.fail_timeout
        self.members.append(member)
        self.by_address[member.address] = member
        self.rings = None

    def add(self, member, now=None):
        """Adds a member to the running pool; it ramps up over slow_start.
        Adding the address of a draining member brings that member back
        (with its counters) instead. Returns the member now in the pool."""
        now = time.monotonic() if now is None else now
        existing = self.by_address.get(member.address)
        if existing is not None:
            if existing.state != "draining":
                raise ValueError(f"pool {self.name}: {member.address} is already a member")
            existing.weight, existing.backup, existing.max_conns = member.weight, member.backup, member.max_conns
            existing.state = "up"
            existing.recovered_at = now
            self.rings = None
            return existing
        self._join(member)
        member.recovered_at = now
        return member

    def remove(self, address):
        """Drains a member: it gets no new request and `reap()` drops it once
        its requests in flight are done. Returns the member (KeyError when
        the address is not in the pool)."""
        member = self.by_address[address]
        member.state = "draining"
        self.rings = None
        return member

    def reap(self):
        """Drops the draining members that have no request in flight; returns them."""
        idle = [m for m in self.members if m.state == "draining" and m.active == 0]
        for member in idle:
            self.members.remove(member)
            del self.by_address[member.address]
        return idle

    def replace(self, members, now=None):
        """Makes the pool's membership `members` (a reload, a DNS update).
        A member whose address stays keeps its object, counters and state and
        takes the new weight, backup and max_conns; new addresses join (with
        slow start); addresses no longer listed are drained. Returns
        (joined, drained), lists of members."""
        now = time.monotonic() if now is None else now
        wanted = {}
        for member in members:
            if member.address in wanted:
                raise ValueError(f"pool {self.name}: {member.address} is listed twice")
            wanted[member.address] = member
        joined, drained = [], []
        for address, member in wanted.items():
            existing = self.by_address.get(address)
            if existing is None:
                joined.append(self.add(member, now))
            elif existing.state == "draining":
                joined.append(self.add(member, now))
            else:
                if (existing.weight, existing.backup) != (member.weight, member.backup):
                    self.rings = None
                existing.weight, existing.backup, existing.max_conns = member.weight, member.backup, member.max_conns
        for member in self.members:
            if member.address not in wanted and member.state != "draining":
                self.remove(member.address)
                drained.append(member)
        return joined, drained

    # -- the pick ---------------------------------------------------------------

    def effective_weight(self, member, now):
        """The weight the balancer uses now: the configured weight, or less
        while the member ramps up after recovering (slow start)."""
        if member.recovered_at is None or self.slow_start == 0.0:
            return member.weight
        elapsed = now - member.recovered_at
        if elapsed >= self.slow_start:
            member.recovered_at = None  # ramp over: later picks skip the arithmetic
            return member.weight
        return member.weight * max(elapsed / self.slow_start, SLOW_START_FLOOR)

    def pick(self, view, now, exclude=()):
        """The member for this request, or None when there is none to use
        (every member excluded, down or full, or panic="refuse" in panic):
        the core then answers 502/503. `view` offers method, path,
        header(name) and client_ip and is read only during this call;
        `exclude` holds the members this request already tried."""
        primaries = 0  # not draining, healthy or not: the panic threshold's base
        healthy_primaries = 0
        candidates = []
        backup_candidates = None
        healthy_backup = False
        for member in self.members:
            # the common case read inline (pick runs once per request);
            # healthy() also ends an expired down period
            if not (member.state == "up" and member.health != "failing") and not member.healthy(now):
                if not member.backup and member.state != "draining":
                    primaries += 1
                continue
            if member.backup:
                healthy_backup = True
                if member not in exclude and (member.max_conns == 0 or member.active < member.max_conns):
                    if backup_candidates is None:
                        backup_candidates = []
                    backup_candidates.append(member)
                continue
            primaries += 1
            healthy_primaries += 1
            if member not in exclude and (member.max_conns == 0 or member.active < member.max_conns):
                candidates.append(member)
        in_panic = (primaries and not healthy_backup
                    and healthy_primaries < self.panic_threshold * primaries)
        if in_panic:
            if self.panic == "refuse":
                return None
            candidates = [m for m in self.members
                          if not m.backup and m.state != "draining" and m not in exclude
                          and (m.max_conns == 0 or m.active < m.max_conns)]
            return self._choose(candidates, view, now, backup=False, ignore_health=True)
        if candidates:
            return self._choose(candidates, view, now, backup=False, ignore_health=False)
        if backup_candidates is not None:
            return self._choose(backup_candidates, view, now, backup=True, ignore_health=False)
        return None

    def _choose(self, candidates, view, now, backup, ignore_health):
        if not candidates:
            return None
        if len(candidates) == 1:
            return candidates[0]  # a lone candidate's round-robin score would come back unchanged
        if self.balance == "round_robin":
            return self._smooth_round_robin(candidates, now)
        if self.balance == "least_conn":
            return self._least_conn(candidates, now)
        if self.balance == "random_two":
            return self._random_two(candidates, now)
        return self._hash(candidates, view, backup)

    def _smooth_round_robin(self, candidates, now):
        # nginx's ngx_http_upstream_get_peer, described in the module header;
        # only the candidates take part, so a member that is skipped keeps its
        # score and does not bank turns while it is away
        total = 0.0
        best = None
        for member in candidates:
            weight = member.weight if member.recovered_at is None else self.effective_weight(member, now)
            member.score += weight
            total += weight
            if best is None or member.score > best.score:
                best = member
        best.score -= total
        return best

    def _least_conn(self, candidates, now):
        tied = []
        best_load = None
        for member in candidates:
            load = member.active / self.effective_weight(member, now)
            if best_load is None or load < best_load:
                best_load = load
                tied = [member]
            elif load == best_load:
                tied.append(member)
        if len(tied) == 1:
            return tied[0]
        return self._smooth_round_robin(tied, now)

    def _random_two(self, candidates, now):
        weights = [self.effective_weight(m, now) for m in candidates]
        first = self._draw(weights, None)
        second = self._draw(weights, first)
        # compare active/weight without dividing: a*w2 < b*w1
        if candidates[second].active * weights[first] < candidates[first].active * weights[second]:
            return candidates[second]
        return candidates[first]

    def _draw(self, weights, other_than):
        """The index of one candidate drawn in proportion to its weight,
        never the index `other_than` (so the two choices are distinct)."""
        total = sum(weights)
        if other_than is not None:
            total -= weights[other_than]
        point = self.random.random() * total
        chosen = None
        for index, weight in enumerate(weights):
            if index == other_than:
                continue
            chosen = index
            point -= weight
            if point < 0:
                break
        return chosen

    # -- consistent hashing -------------------------------------------------------

    def hash_key_of(self, view):
        """The string hashed for this request under hash_key."""
        if self.hash_key == "client_ip":
            return view.client_ip or ""
        if self.hash_key == "uri":
            return view.path or ""
        return view.header(self.hash_header) or ""

    def _hash(self, candidates, view, backup):
        if self.rings is None:
            self.rings = (self._build_ring(False), self._build_ring(True))
        points, owners, distinct_owners = self.rings[1 if backup else 0]
        if not points:
            return None
        allowed = set(map(id, candidates))
        start = bisect.bisect_left(points, ring_position(self.hash_key_of(view)))
        # walk clockwise to the first point whose owner is a candidate; stop
        # once every owner on the ring has been seen (each owns many points)
        seen = set()
        for step in range(len(points)):
            owner = owners[(start + step) % len(points)]
            if id(owner) in allowed:
                return owner
            seen.add(id(owner))
            if len(seen) == distinct_owners:
                break
        return None

    def _build_ring(self, backup):
        """Sorted ring positions and their owners for the primary or backup
        members (draining members own no point: their keys have moved on)."""
        placed = []
        for member in self.members:
            if member.backup != backup or member.state == "draining":
                continue
            for index in range(POINTS_PER_WEIGHT * member.weight):
                placed.append((ring_position(f"{member.address}#{index}"), member.address, member))
        # two points at the same position (a 1 in 2**64 chance) are ordered
        # by address, so every process builds the same ring
        placed.sort(key=lambda entry: (entry[0], entry[1]))
        owners = [entry[2] for entry in placed]
        return [entry[0] for entry in placed], owners, len(set(map(id, owners)))

    # -- reporting ----------------------------------------------------------------

    def snapshot(self, now=None):
        """The pool as JSON-able data for `GET /upstreams`."""
        now = time.monotonic() if now is None else now
        members = []
        for member in self.members:
            healthy = member.healthy(now)  # also ends an expired down period
            members.append({
                "address": member.address,
                "state": member.state,
                "active": member.active,
                "requests": member.requests,
                "failures": member.failures,
                "retries": member.retries,
                "duration_seconds_sum": round(member.duration_seconds_sum, 6),
                "health": member.health,
                "weight": member.weight,
                "effective_weight": round(self.effective_weight(member, now), 3) if healthy else 0,
                "backup": member.backup,
                "max_conns": member.max_conns,
                "down_for": round(member.down_until - now, 3) if member.state == "down" else 0,
            })
        return {
            "name": self.name,
            "balance": self.balance,
            "hash_key": self.hash_key,
            "panic": self.panic,
            "panic_threshold": self.panic_threshold,
            "members": members,
        }


def ring_position(text):
    """A 64-bit place on the hash ring. Stable across processes and runs
    (Python's hash() is salted per process), so every worker and every
    fastcore instance sends a key to the same member."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=8).digest(), "big")
