"""The limits table (fastcore._core.limits.LimitTable over src_c/fc_limits.c)
and who the client is (fastcore._core.realip), from Python: the table's
memory bound with 1,000,000 distinct clients, its eviction rule, IPv6 keys
by /64, one table shared by processes; the forwarding-field walk."""
import mmap
import os

import pytest

from fastcore._core.limits import LimitTable, table_size
from fastcore._core.realip import ClientResolver, NetworkSet


def make_table(entries, shared=False):
    buffer = mmap.mmap(-1, table_size(entries)) if shared else bytearray(table_size(entries))
    return LimitTable(buffer, entries, 12345), buffer


def test_limits_table_stays_within_its_bound_with_a_million_clients():
    table, buffer = make_table(10_000)
    size = len(buffer)
    assert size == 64 + 2048 * 256  # 10,000 keys -> 2048 buckets of 7 -> 14,336 entries, 512 KiB
    assert table.capacity == 14_336
    for i in range(1_000_000):
        address = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" if i < 1 << 24 else None
        table.request(address, 1, 1000 + i / 1000, rate=1)
    used, held = table.used()
    assert table.capacity * 0.9 <= used <= table.capacity
    assert held == 0
    assert table.evictions >= 1_000_000 - table.capacity
    assert len(buffer) == size  # the mapping is all the memory there is


def test_limits_table_evicts_the_least_recently_seen():
    table, _ = make_table(7)  # one bucket of 7
    assert table.capacity == 7
    for i in range(7):
        table.request(f"192.0.2.{i}", 1, 100.0 + i * 2, rate=1)
    # 192.0.2.0 comes back (seen again), so 192.0.2.1 is now the oldest
    assert table.request("192.0.2.0", 1, 120.0, rate=1)[0] == "pass"
    table.request("198.51.100.1", 1, 120.1, rate=1)  # a newcomer takes the oldest place
    assert table.request("192.0.2.0", 1, 120.2, rate=1)[0] == "rate"  # remembered: too soon
    assert table.request("198.51.100.1", 1, 120.2, rate=1)[0] == "rate"  # the newcomer is in
    # 192.0.2.1 was forgotten: it passes as a new client, in 192.0.2.2's place (the oldest now)
    assert table.request("192.0.2.1", 1, 120.3, rate=1)[0] == "pass"
    assert table.used() == (7, 0)
    assert table.evictions == 2


def test_limits_table_keeps_clients_holding_requests_over_idle_ones():
    table, _ = make_table(7)
    table.request("192.0.2.0", 1, 1.0, conn=5)  # the oldest, but a request in progress
    for i in range(1, 7):
        table.request(f"192.0.2.{i}", 1, 2.0 + i, rate=1)
    table.request("198.51.100.1", 1, 20.0, rate=1)  # evicts 192.0.2.1, not .0
    assert table.used() == (7, 1)
    table.release("192.0.2.0", 1)
    assert table.used() == (7, 0)


def test_limits_table_keys_ipv6_by_64():
    table, _ = make_table(100)
    assert table.request("2001:db8:1:2::1", 1, 10.0, rate=1)[0] == "pass"
    assert table.request("2001:db8:1:2:ffff::9", 1, 10.1, rate=1)[0] == "rate"  # same /64
    assert table.request("2001:db8:1:3::1", 1, 10.1, rate=1)[0] == "pass"      # another /64
    assert table.request("2001:db8:1:2::1", 2, 10.1, rate=1)[0] == "pass"      # another zone


def test_limits_table_rate_and_retry_after():
    table, _ = make_table(100)
    assert table.request("192.0.2.1", 1, 10.0, rate=2) == ("pass", 0.0)
    verdict, wait = table.request("192.0.2.1", 1, 10.1, rate=2)
    assert verdict == "rate" and wait == pytest.approx(0.4, abs=0.002)
    assert table.request("192.0.2.1", 1, 10.5, rate=2)[0] == "pass"
    # burst 2 without nodelay: delays of one and two intervals
    assert table.request("192.0.2.2", 1, 10.0, rate=2, burst=2)[0] == "pass"
    assert table.request("192.0.2.2", 1, 10.0, rate=2, burst=2) == ("delay", 0.5)
    assert table.request("192.0.2.2", 1, 10.0, rate=2, burst=2) == ("delay", 1.0)
    assert table.request("192.0.2.2", 1, 10.0, rate=2, burst=2)[0] == "rate"


def test_limits_table_is_one_for_every_process():
    """A client counted by a forked process is counted in the parent: the
    arbiter's mapping made before fork is what every worker shares."""
    table, buffer = make_table(100, shared=True)
    pid = os.fork()
    if pid == 0:
        child = LimitTable(buffer)  # as a worker opens the arbiter's table
        verdict, _ = child.request("192.0.2.7", 1, 50.0, conn=1)
        os._exit(0 if verdict == "pass" else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert table.request("192.0.2.7", 1, 50.0, conn=1)[0] == "conn"
    table.release("192.0.2.7", 1)
    assert table.request("192.0.2.7", 1, 50.0, conn=1)[0] == "pass"


def test_limits_table_refuses_a_buffer_that_is_not_one():
    with pytest.raises(ValueError):
        LimitTable(bytearray(4096))
    with pytest.raises(ValueError):
        LimitTable(bytearray(100), 1000, 1)


def test_realip_networks():
    networks = NetworkSet(["10.0.0.0/8", "2001:db8::/32"])
    assert "10.9.8.7" in networks and "11.0.0.1" not in networks
    assert "2001:db8::5" in networks and "2001:db9::5" not in networks
    assert "::ffff:10.0.0.1" in networks  # IPv4-mapped is IPv4
    assert "1.2.3.4" in NetworkSet(["*"])
    assert not NetworkSet([])


@pytest.mark.parametrize("peer, fields, client", [
    ("127.0.0.1", [("X-Forwarded-For", "203.0.113.5")], "203.0.113.5"),
    ("127.0.0.1", [("X-Forwarded-For", "6.6.6.6, 203.0.113.5, 10.0.0.1")], "203.0.113.5"),
    # several fields: one list, the last field's addresses nearest
    ("127.0.0.1", [("X-Forwarded-For", "203.0.113.5"), ("x-forwarded-for", "10.0.0.2")], "203.0.113.5"),
    ("127.0.0.1", [("X-Forwarded-For", "10.0.0.3, 10.0.0.2")], "10.0.0.3"),
    ("127.0.0.1", [("X-Forwarded-For", "garbage")], "127.0.0.1"),
    ("127.0.0.1", [], "127.0.0.1"),
    ("192.0.2.99", [("X-Forwarded-For", "203.0.113.5")], "192.0.2.99"),  # untrusted peer
])
def test_realip_resolver(peer, fields, client):
    resolver = ClientResolver(["127.0.0.0/8", "10.0.0.0/8"], "X-Forwarded-For")
    assert resolver.client_of(peer, fields) == client
