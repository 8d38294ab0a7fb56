"""The balancer in-process: algorithms, passive health, groups, panic and
membership changes. Time is the `now` passed in: nothing sleeps.

fastcore/proxy/balancer.py is compiled by Cython (with balancer.pxd) into
the module the server runs; every test here runs twice: against that
compiled module, and against the same source run as plain Python, so the
two cannot drift apart."""
import collections
import importlib.util
import json
import pathlib
import random

import pytest

from fastcore.proxy import Member, Pool, parse_address
from fastcore.proxy.balancer import split_scheme
from fastcore.proxy import balancer


class View:
    """What the data path hands to pick: method, path, header(), client_ip."""

    def __init__(self, path="/", client_ip="192.0.2.1", headers=None, method="GET"):
        self.method = method
        self.path = path
        self.client_ip = client_ip
        self.headers = {name.lower(): value for name, value in (headers or {}).items()}

    def header(self, name):
        return self.headers.get(name.lower())


VIEW = View()


def _plain_python_balancer():
    source = pathlib.Path(balancer.__file__).with_name("balancer.py")
    spec = importlib.util.spec_from_file_location("fastcore_proxy_balancer_as_python", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PLAIN = _plain_python_balancer()


def test_the_server_runs_the_compiled_balancer_and_the_other_is_plain_python():
    compiled = importlib.import_module("fastcore.proxy.balancer")
    assert compiled.__file__.endswith(".so") and "__pyx_vtable__" in dir(compiled.Pool)
    assert PLAIN.__file__.endswith("balancer.py") and "__pyx_vtable__" not in dir(PLAIN.Pool)


@pytest.fixture(autouse=True, params=["compiled", "plain"])
def implementation(request, monkeypatch):
    """Every test below, once per implementation of the same source."""
    if request.param == "plain":
        for name, value in (("Member", PLAIN.Member), ("Pool", PLAIN.Pool), ("split_scheme", PLAIN.split_scheme),
                            ("balancer", PLAIN)):
            monkeypatch.setitem(globals(), name, value)
    return request.param


def make_pool(count=3, weights=None, **options):
    weights = weights or [1] * count
    members = [Member(f"10.0.0.{index + 1}:8000", weight=weight) for index, weight in enumerate(weights)]
    return Pool("app", members, **options)


def count_picks(pool, picks, now=0.0, view=VIEW):
    counts = collections.Counter()
    for _ in range(picks):
        member = pool.pick(view, now)
        counts[member.address if member else None] += 1
    return counts


def test_balancer_round_robin_within_five_percent_of_weights():
    pool = make_pool(weights=[3, 2, 1])
    counts = count_picks(pool, 3000)
    for member in pool.members:
        expected = 3000 * member.weight / 6
        assert abs(counts[member.address] - expected) <= 0.05 * expected


def test_balancer_smooth_round_robin_sequence_is_nginx_documented_one():
    pool = Pool("app", [Member("10.0.0.1:80", weight=5), Member("10.0.0.2:80"), Member("10.0.0.3:80")])
    names = {"10.0.0.1:80": "a", "10.0.0.2:80": "b", "10.0.0.3:80": "c"}
    sequence = [names[pool.pick(VIEW, 0.0).address] for _ in range(14)]
    assert sequence == list("aabacaa") * 2


def test_balancer_least_conn_avoids_busy_member_and_rotates_when_idle():
    pool = make_pool(3, balance="least_conn")
    busy = pool.members[0]
    busy.active = 10
    counts = count_picks(pool, 100)
    assert counts[busy.address] == 0
    assert counts["10.0.0.2:8000"] == counts["10.0.0.3:8000"] == 50
    # when the core counts its own picks as active, new requests spread
    busy.active = 0
    for _ in range(30):
        pool.pick(VIEW, 0.0).active += 1
    assert [m.active for m in pool.members] == [10, 10, 10]


def test_balancer_least_conn_is_weighted():
    pool = make_pool(2, weights=[3, 1], balance="least_conn")
    heavy, light = pool.members
    heavy.active, light.active = 5, 2  # 5/3 < 2/1
    assert pool.pick(VIEW, 0.0) is heavy
    heavy.active = 7  # 7/3 > 2/1
    assert pool.pick(VIEW, 0.0) is light


def test_balancer_random_two_never_picks_the_busiest():
    pool = make_pool(5, balance="random_two")
    pool.random = random.Random(7)
    pool.members[2].active = 100
    for index, member in enumerate(pool.members):
        if index != 2:
            member.active = index  # all distinct and below the busiest
    counts = count_picks(pool, 2000)
    assert counts["10.0.0.3:8000"] == 0
    # it is still random: every other member is chosen at some point, the
    # least busy most often
    assert all(counts[m.address] > 0 for i, m in enumerate(pool.members) if i not in (2, 4))
    assert counts["10.0.0.1:8000"] == max(counts.values())


def test_balancer_random_two_of_two_picks_the_less_busy():
    pool = make_pool(2, balance="random_two")
    pool.members[0].active = 3
    assert count_picks(pool, 200) == {"10.0.0.2:8000": 200}


def hash_pool(count, **options):
    return Pool("app", [Member(f"10.1.0.{index}:80") for index in range(count)],
                balance="hash", hash_key="header:X-User", **options)


def placement(pool, keys, now=0.0):
    return {key: pool.pick(View(headers={"x-user": key}), now).address for key in keys}


def test_balancer_hash_keeps_a_key_on_one_member():
    pool = hash_pool(5)
    view = View(headers={"X-User": "alice"})
    assert len({pool.pick(view, 0.0).address for _ in range(50)}) == 1
    # another pool built from the same addresses (another worker) agrees
    assert hash_pool(5).pick(view, 0.0).address == pool.pick(view, 0.0).address


def test_balancer_hash_removing_one_of_five_moves_only_its_keys():
    keys = [f"user-{index}" for index in range(10_000)]
    pool = hash_pool(5)
    before = placement(pool, keys)
    leaving = "10.1.0.3:80"
    share = sum(1 for address in before.values() if address == leaving)
    assert 0 < share <= 1.5 * len(keys) / 5
    pool.remove(leaving)
    after = placement(pool, keys)
    moved = {key for key in keys if before[key] != after[key]}
    assert moved == {key for key in keys if before[key] == leaving}
    assert leaving not in after.values()


def test_balancer_hash_skips_unavailable_member_and_returns_after():
    keys = [f"k{index}" for index in range(500)]
    pool = hash_pool(4)
    before = placement(pool, keys)
    sick = pool.by_address["10.1.0.1:80"]
    sick.health = "failing"
    during = placement(pool, keys)
    assert all(during[k] == before[k] for k in keys if before[k] != sick.address)
    assert sick.address not in during.values()
    sick.health = "passing"
    assert placement(pool, keys) == before


def test_balancer_hash_keys_from_client_ip_and_uri():
    by_ip = Pool("app", [Member(f"10.1.0.{i}:80") for i in range(4)], balance="hash", hash_key="client_ip")
    by_uri = Pool("app", [Member(f"10.1.0.{i}:80") for i in range(4)], balance="hash", hash_key="uri")
    ips = {by_ip.pick(View(client_ip=f"198.51.100.{i}"), 0.0).address for i in range(64)}
    uris = {by_uri.pick(View(path=f"/item/{i}"), 0.0).address for i in range(64)}
    assert len(ips) == 4 and len(uris) == 4
    assert by_ip.pick(View(client_ip="198.51.100.9", path="/a"), 0.0) is by_ip.pick(View(client_ip="198.51.100.9", path="/b"), 0.0)


def test_balancer_backup_only_when_every_primary_is_down():
    primaries = [Member("10.0.0.1:80"), Member("10.0.0.2:80")]
    backup = Member("10.0.0.9:80", backup=True)
    pool = Pool("app", primaries + [backup])
    assert backup.address not in count_picks(pool, 50)
    primaries[0].note_failure(0.0)
    assert count_picks(pool, 50) == {"10.0.0.2:80": 50}
    primaries[1].note_failure(0.0)
    assert count_picks(pool, 50) == {backup.address: 50}
    # the primaries come back after fail_timeout and take over again
    assert backup.address not in count_picks(pool, 50, now=10.5)


def test_balancer_max_fails_within_fail_timeout_marks_down_then_back():
    pool = make_pool(2, max_fails=3, fail_timeout=30.0)
    member = pool.members[0]
    assert not member.note_failure(0.0)
    assert not member.note_failure(10.0)
    # the window opened at 0 has closed: this failure starts a new one
    assert not member.note_failure(31.0)
    assert not member.note_failure(40.0)
    assert member.note_failure(50.0)
    assert member.state == "down" and member.down_until == 80.0
    assert not member.available(79.9)
    assert member.address not in count_picks(pool, 10, now=79.9)
    assert member.available(80.0)
    assert member.state == "up"
    assert member.address in count_picks(pool, 10, now=80.0)
    # probation (nginx): one failure soon after coming back puts it down again
    assert member.note_failure(81.0)
    assert member.down_until == 111.0
    # note_success ends the probation
    assert member.available(111.0)
    member.note_success(111.0)
    assert not member.note_failure(112.0)


def test_balancer_max_fails_zero_never_marks_down():
    pool = make_pool(1, max_fails=0)
    for second in range(100):
        assert not pool.members[0].note_failure(float(second))
    assert pool.members[0].available(100.0)


def test_balancer_max_conns_makes_member_unavailable_while_full():
    members = [Member("10.0.0.1:80", max_conns=2), Member("10.0.0.2:80")]
    pool = Pool("app", members, balance="least_conn")
    members[0].active = 2
    members[1].active = 50
    assert pool.pick(VIEW, 0.0) is members[1]
    members[0].active = 1
    assert pool.pick(VIEW, 0.0) is members[0]


def test_balancer_slow_start_ramps_effective_weight():
    pool = make_pool(2, weights=[4, 4], slow_start=20.0, max_fails=1, fail_timeout=10.0)
    cold, warm = pool.members
    cold.note_failure(0.0)
    assert pool.pick(VIEW, 5.0) is warm
    snapshot_weights = []
    for now in (10.0, 15.0, 20.0, 25.0, 30.0, 35.0):
        entry = next(m for m in pool.snapshot(now)["members"] if m["address"] == cold.address)
        snapshot_weights.append(entry["effective_weight"])
    assert snapshot_weights == [4 * balancer.SLOW_START_FLOOR, 1.0, 2.0, 3.0, 4, 4]
    # the ramp shows in the traffic: about a quarter of its share at 25%
    cold.recovered_at = 10.0
    pool_counts = count_picks(pool, 1000, now=15.0)
    assert 150 <= pool_counts[cold.address] <= 250  # weight 1 against 4: 200


def test_balancer_slow_start_after_active_health_recovery_and_for_new_members():
    pool = make_pool(2, slow_start=10.0)
    joined = pool.add(Member("10.0.0.7:8000", weight=2), now=100.0)
    entry = {m["address"]: m for m in pool.snapshot(105.0)["members"]}
    assert entry[joined.address]["effective_weight"] == 1.0
    assert entry["10.0.0.1:8000"]["effective_weight"] == 1


def test_balancer_panic_all_spreads_over_every_primary():
    pool = make_pool(4, panic="all", panic_threshold=0.5)
    for member in pool.members[:3]:
        member.health = "failing"
    counts = count_picks(pool, 400)
    assert set(counts) == {m.address for m in pool.members}
    # at the threshold (2 of 4 healthy) it is not in panic
    pool.members[0].health = "passing"
    assert set(count_picks(pool, 100)) == {"10.0.0.1:8000", "10.0.0.4:8000"}


def test_balancer_panic_refuse_returns_none():
    pool = make_pool(4, panic="refuse", panic_threshold=0.5)
    for member in pool.members[:3]:
        member.health = "failing"
    assert pool.pick(VIEW, 0.0) is None
    # a healthy backup lifts the panic: the lone primary serves
    pool.add(Member("10.0.0.9:80", backup=True))
    assert pool.pick(VIEW, 0.0).address == "10.0.0.4:8000"


def test_balancer_panic_threshold_zero_is_off():
    pool = make_pool(4, panic="refuse", panic_threshold=0.0)
    for member in pool.members[:3]:
        member.note_failure(0.0)
    assert count_picks(pool, 20) == {"10.0.0.4:8000": 20}


def test_balancer_exclude_is_honoured():
    for balance in ("round_robin", "least_conn", "random_two"):
        pool = make_pool(3, balance=balance)
        tried = (pool.members[0], pool.members[2])
        for _ in range(50):
            assert pool.pick(VIEW, 0.0, exclude=tried) is pool.members[1]
        assert pool.pick(VIEW, 0.0, exclude=tuple(pool.members)) is None
    pool = hash_pool(3)
    first = pool.pick(VIEW, 0.0)
    second = pool.pick(VIEW, 0.0, exclude=(first,))
    assert second is not first
    assert pool.pick(VIEW, 0.0, exclude=(first, second)) not in (first, second)


def test_balancer_exclude_falls_to_backup():
    primary, backup = Member("10.0.0.1:80"), Member("10.0.0.2:80", backup=True)
    pool = Pool("app", [primary, backup])
    assert pool.pick(VIEW, 0.0, exclude=(primary,)) is backup


def test_balancer_remove_drains_then_reap_drops():
    pool = make_pool(3)
    leaving = pool.members[1]
    leaving.active = 2
    assert pool.remove(leaving.address) is leaving
    assert leaving.state == "draining"
    assert leaving.address not in count_picks(pool, 30)
    assert pool.reap() == []
    leaving.active = 0
    assert pool.reap() == [leaving]
    assert leaving.address not in pool.by_address
    assert len(pool.members) == 2


def test_balancer_replace_keeps_counters_and_drains_missing():
    pool = make_pool(3)
    kept = pool.members[0]
    kept.requests, kept.failures, kept.active = 40, 2, 1
    gone = pool.members[2]
    joined, drained = pool.replace([Member("10.0.0.1:8000", weight=3), Member("10.0.0.2:8000"),
                                    Member("10.0.0.5:8000")], now=0.0)
    assert [m.address for m in joined] == ["10.0.0.5:8000"]
    assert drained == [gone] and gone.state == "draining"
    assert pool.by_address["10.0.0.1:8000"] is kept
    assert (kept.requests, kept.failures, kept.active, kept.weight) == (40, 2, 1, 3)
    # the draining member comes back if a later update lists it again
    pool.replace([Member(a) for a in ("10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000")], now=1.0)
    assert gone.state == "up" and pool.by_address["10.0.0.3:8000"] is gone


def test_balancer_snapshot_is_json():
    pool = make_pool(2, weights=[2, 1])
    pool.members[0].requests = 5
    pool.members[1].note_failure(0.0)
    data = json.loads(json.dumps(pool.snapshot(1.0)))
    assert data["name"] == "app"
    first, second = data["members"]
    assert first["address"] == "10.0.0.1:8000" and first["requests"] == 5 and first["effective_weight"] == 2
    assert second["state"] == "down" and second["effective_weight"] == 0
    assert set(first) >= {"address", "state", "active", "requests", "failures", "health",
                          "weight", "effective_weight", "backup"}


def test_balancer_refuses_bad_settings():
    with pytest.raises(ValueError):
        make_pool(balance="fastest")
    with pytest.raises(ValueError):
        make_pool(balance="hash")
    with pytest.raises(ValueError):
        make_pool(balance="hash", hash_key="cookie")
    with pytest.raises(ValueError):
        make_pool(panic="maybe")
    with pytest.raises(ValueError):
        Member("10.0.0.1:80", weight=0)
    with pytest.raises(ValueError):
        Pool("app", [Member("10.0.0.1:80"), Member("10.0.0.1:80")])


def test_balancer_parse_address():
    import socket
    assert parse_address("10.0.0.2:8000") == (socket.AF_INET, ("10.0.0.2", 8000))
    assert parse_address("[::1]:8000") == (socket.AF_INET6, ("::1", 8000))
    assert parse_address("unix:/run/app.sock") == (socket.AF_UNIX, "/run/app.sock")
    assert parse_address("https://10.0.0.2:8443") == (socket.AF_INET, ("10.0.0.2", 8443))
    assert parse_address("https://[::1]:8443") == (socket.AF_INET6, ("::1", 8443))
    assert parse_address("http://10.0.0.2:80") == (socket.AF_INET, ("10.0.0.2", 80))
    assert split_scheme("https://10.0.0.2:8443") == (True, "10.0.0.2:8443")
    assert split_scheme("http://10.0.0.2:80") == (False, "10.0.0.2:80")
    assert split_scheme("10.0.0.2:80") == (False, "10.0.0.2:80")
    for bad in ("::1:80", "example.com:80", "10.0.0.2", "10.0.0.2:0", "10.0.0.2:99999", "unix:", "[::1]80"):
        with pytest.raises(ValueError):
            parse_address(bad)
