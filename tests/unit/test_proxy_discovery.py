"""DNS discovery: the stub resolver's parser on crafted packets, Discovery's
rules with a stand-in resolve(), and end to end against a real dnsmasq whose
hosts file the test changes while picks go on."""
import ipaddress
import os
import pwd
import random
import shutil
import signal
import socket
import struct
import subprocess
import time

import pytest

from fastcore.proxy import Member, Pool
from fastcore.proxy import discovery
from fastcore.proxy.discovery import (MalformedReply, NameNotFound, ResolveTimeout, Discovery,
                                      build_query, parse_reply, resolve)

A, AAAA, CNAME, SOA = 1, 28, 5, 6


# -- crafting packets (written from RFC 1035 section 4, independently of the module) --


def wire_name(name):
    return b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"


def pointer(offset):
    return struct.pack(">H", 0xC000 | offset)


QUESTION_NAME_AT = 12  # the question's name follows the 12-byte header


def record(owner, rtype, ttl, rdata):
    return owner + struct.pack(">HHIH", rtype, 1, ttl, len(rdata)) + rdata


def reply(query_id=0x1234, name="app.test", qtype=A, answers=(), authority=(), flags=0x8180, question_count=1):
    header = struct.pack(">HHHHHH", query_id, flags, question_count, len(answers), len(authority), 0)
    question = wire_name(name) + struct.pack(">HH", qtype, 1)
    return header + question + b"".join(answers) + b"".join(authority)


def a_record(ip, ttl=60, owner=None):
    return record(owner or pointer(QUESTION_NAME_AT), A, ttl, ipaddress.ip_address(ip).packed)


def test_discovery_build_query_is_rfc1035():
    packet = build_query("App.Test.", A, 0xBEEF)
    assert packet == (b"\xbe\xef\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                      b"\x03App\x04Test\x00\x00\x01\x00\x01")
    with pytest.raises(ValueError):
        build_query("a" * 64 + ".test", A, 1)
    with pytest.raises(ValueError):
        build_query("a..test", A, 1)
    with pytest.raises(ValueError):
        build_query(".".join(["abcdefghi"] * 30), A, 1)


def test_discovery_parse_addresses_with_compression_and_smallest_ttl():
    packet = reply(answers=[a_record("10.0.0.1", ttl=60), a_record("10.0.0.2", ttl=30)])
    parsed = parse_reply(packet, 0x1234, "APP.test", A)
    assert parsed.rcode == 0 and not parsed.truncated
    assert parsed.addresses == ["10.0.0.1", "10.0.0.2"] and parsed.ttl == 30


def test_discovery_parse_aaaa_and_cname_chain():
    target = wire_name("pods.cluster.test")
    cname = record(pointer(QUESTION_NAME_AT), CNAME, 20, target)
    # the target's name sits in the CNAME's data: point at it
    target_at = 12 + len(wire_name("app.test")) + 4 + 2 + 10
    aaaa = record(pointer(target_at), AAAA, 90, ipaddress.ip_address("fd00::7").packed)
    stray = record(wire_name("other.test"), AAAA, 5, ipaddress.ip_address("fd00::9").packed)
    parsed = parse_reply(reply(qtype=AAAA, answers=[cname, aaaa, stray]), 0x1234, "app.test", AAAA)
    assert parsed.addresses == ["fd00::7"]  # the record of an unrelated owner is not ours
    assert parsed.ttl == 20                  # the CNAME's TTL bounds the answer's


def test_discovery_parse_refuses_compression_loops():
    # a pointer to itself, as the answer's owner
    own_offset = len(reply())
    looping = reply(answers=[pointer(own_offset) + struct.pack(">HHIH", A, 1, 60, 4) + bytes(4)])
    with pytest.raises(MalformedReply, match="backwards"):
        parse_reply(looping, 0x1234, "app.test", A)
    # a forward pointer (which is how a two-pointer loop has to start)
    forward = reply(answers=[pointer(own_offset + 2) + pointer(own_offset) + struct.pack(">HHIH", A, 1, 60, 4) + bytes(4)])
    with pytest.raises(MalformedReply):
        parse_reply(forward, 0x1234, "app.test", A)
    # a label type RFC 1035 reserves
    reserved = reply(answers=[b"\x40" + struct.pack(">HHIH", A, 1, 60, 4) + bytes(4)])
    with pytest.raises(MalformedReply, match="reserved"):
        parse_reply(reserved, 0x1234, "app.test", A)


def test_discovery_parse_refuses_every_truncated_prefix():
    packet = reply(answers=[a_record("10.0.0.1"), record(wire_name("x.app.test"), CNAME, 5, pointer(12))])
    parse_reply(packet, 0x1234, "app.test", A)  # whole, it is fine
    for length in range(len(packet)):
        with pytest.raises(MalformedReply):
            parse_reply(packet[:length], 0x1234, "app.test", A)
    with pytest.raises(MalformedReply, match="after the last record"):
        parse_reply(packet + b"\0", 0x1234, "app.test", A)


def test_discovery_parse_truncated_flag_means_ask_over_tcp():
    cut = reply(answers=[a_record("10.0.0.1")], flags=0x8380)[:40]  # TC set, cut short
    parsed = parse_reply(cut, 0x1234, "app.test", A)
    assert parsed.truncated and parsed.addresses == []


def test_discovery_parse_nxdomain_with_negative_ttl():
    soa_data = wire_name("ns.test") + wire_name("admin.test") + struct.pack(">IIIII", 1, 3600, 600, 86400, 45)
    soa = record(wire_name("test"), SOA, 300, soa_data)
    parsed = parse_reply(reply(flags=0x8183, authority=[soa]), 0x1234, "app.test", A)
    assert parsed.rcode == 3 and parsed.addresses == [] and parsed.ttl == 45


def test_discovery_parse_refuses_other_replies():
    good = reply(answers=[a_record("10.0.0.1")])
    with pytest.raises(MalformedReply, match="ID"):
        parse_reply(good, 0x4321, "app.test", A)
    with pytest.raises(MalformedReply, match="another question"):
        parse_reply(good, 0x1234, "other.test", A)
    with pytest.raises(MalformedReply, match="another question"):
        parse_reply(good, 0x1234, "app.test", AAAA)
    with pytest.raises(MalformedReply, match="not a response"):
        parse_reply(reply(flags=0x0100), 0x1234, "app.test", A)
    with pytest.raises(MalformedReply, match="questions"):
        parse_reply(reply(question_count=2), 0x1234, "app.test", A)
    with pytest.raises(MalformedReply, match="5 bytes"):
        parse_reply(reply(answers=[record(pointer(12), A, 5, bytes(5))]), 0x1234, "app.test", A)


def test_discovery_parse_ttl_with_top_bit_is_zero():
    parsed = parse_reply(reply(answers=[a_record("10.0.0.1", ttl=0x80000001)]), 0x1234, "app.test", A)
    assert parsed.ttl == 0


def test_discovery_parse_random_bytes_only_raise_malformed():
    source = random.Random(11)
    base = reply(answers=[a_record("10.0.0.1"), a_record("10.0.0.2")])
    for _ in range(3000):
        packet = bytearray(base)
        for _ in range(source.randint(1, 6)):
            packet[source.randrange(2, len(packet))] = source.randrange(256)
        try:
            parse_reply(bytes(packet), 0x1234, "app.test", A)
        except MalformedReply:
            pass


def test_discovery_query_times_out_on_a_silent_server():
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        with pytest.raises(ResolveTimeout):
            resolve("app.test", 80, resolver=f"127.0.0.1:{silent.getsockname()[1]}", timeout=0.2)
        # it did ask, twice (one resend)
        silent.settimeout(1.0)
        first, second = silent.recv(512), silent.recv(512)
        assert first == second and first[12:] == build_query("app.test", A, 0)[12:]
    finally:
        silent.close()


def test_discovery_resolve_literal_and_system():
    assert resolve("10.0.0.5", 80) == (["10.0.0.5:80"], None)
    assert resolve("::1", 80).addresses == ["[::1]:80"]
    addresses, ttl = resolve("localhost", 8080)
    assert "127.0.0.1:8080" in addresses and ttl is None


# -- Discovery's rules, with resolve() stood in for ---------------------------------


def scripted(monkeypatch, answers):
    """Makes discovery.resolve return (or raise) the next of `answers`."""
    queue = list(answers)

    def fake_resolve(name, port, resolver=None, timeout=2.0):
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return discovery.Resolution(*answer)
    monkeypatch.setattr(discovery, "resolve", fake_resolve)


def test_discovery_delays_follow_ttl_with_a_floor(monkeypatch):
    pool = Pool("app", [])
    scripted(monkeypatch, [(["10.0.0.1:80"], 0), (["10.0.0.1:80"], 12), (["10.0.0.1:80"], 3600),
                           (["10.0.0.1:80"], None), discovery.ResolveTimeout("slow")])
    finder = Discovery(pool, "app.test", 80, resolve_interval=60.0)
    assert finder.refresh() == discovery.MINIMUM_RESOLVE_INTERVAL
    assert finder.refresh() == 12
    assert finder.refresh() == 60.0
    assert finder.refresh() == 60.0
    assert finder.refresh() == discovery.RETRY_AFTER_ERROR
    with pytest.raises(ValueError):
        Discovery(pool, "app.test", 80, resolve_interval=0.1)


def test_discovery_keeps_members_on_errors_and_drains_on_nxdomain(monkeypatch):
    static = Member("192.0.2.9:80")
    pool = Pool("app", [static])
    scripted(monkeypatch, [(["10.0.0.1:80", "10.0.0.2:80"], 30), discovery.ServerFailure("SERVFAIL"),
                           discovery.MalformedReply("junk"), NameNotFound("gone", 10)])
    finder = Discovery(pool, "app.test", 80, weight=3)
    finder.refresh()
    assert sorted(m.address for m in pool.members if m.state == "up") == ["10.0.0.1:80", "10.0.0.2:80", "192.0.2.9:80"]
    assert pool.by_address["10.0.0.1:80"].weight == 3
    finder.refresh()
    finder.refresh()
    assert sum(m.state == "up" for m in pool.members) == 3
    assert finder.refresh() == 10
    assert {m.address: m.state for m in pool.members} == {
        "192.0.2.9:80": "up", "10.0.0.1:80": "draining", "10.0.0.2:80": "draining"}


def test_discovery_https_members_carry_the_name_for_tls(monkeypatch):
    plain = Member("10.0.0.1:443")
    pool = Pool("app", [plain])
    scripted(monkeypatch, [(["10.0.0.1:443", "[fd00::2]:443"], 30)])
    finder = Discovery(pool, "api.example.test", 443, scheme="https://")
    finder.refresh()
    # the https:// members are other servers than a plain one at the same address
    assert sorted(m.address for m in pool.members) == ["10.0.0.1:443", "https://10.0.0.1:443",
                                                       "https://[fd00::2]:443"]
    assert pool.by_address["https://[fd00::2]:443"].server_name == "api.example.test"
    assert plain.server_name is None


def test_discovery_apply_hands_changes_to_the_pool_thread(monkeypatch):
    pool = Pool("app", [])
    scripted(monkeypatch, [(["10.0.0.1:80"], 30)])
    handed = []
    finder = Discovery(pool, "app.test", 80, apply=lambda function, *args: handed.append((function, args)))
    finder.refresh()
    assert pool.members == [] and len(handed) == 1
    function, args = handed[0]
    function(*args)
    assert [m.address for m in pool.members] == ["10.0.0.1:80"]


# -- end to end against dnsmasq ----------------------------------------------------------


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1 (dnsmasq listens on both)."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket() as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both UDP and TCP")


def write_hosts(path, entries):
    text = "".join(f"{ip} {name}\n" for ip, name in entries)
    path.write_text(text)
    os.chmod(path, 0o644)


@pytest.fixture
def dnsmasq(tmp_path):
    binary = shutil.which("dnsmasq") or (os.path.exists("/usr/sbin/dnsmasq") and "/usr/sbin/dnsmasq")
    if not binary:
        pytest.skip("dnsmasq is not installed (Debian: apt-get install dnsmasq-base)")
    hosts = tmp_path / "hosts"
    write_hosts(hosts, [("10.0.0.1", "app.test"), ("10.0.0.2", "app.test"), ("fd00::1", "app.test")]
                + [(f"10.9.0.{index}", "many.test") for index in range(1, 101)])
    for attempt in range(3):
        port = free_port()
        process = subprocess.Popen(
            [binary, "--keep-in-foreground", "--no-resolv", "--no-hosts",
             f"--addn-hosts={hosts}", "--local=/test/", "--listen-address=127.0.0.1",
             "--bind-interfaces", f"--port={port}", "--pid-file=", "--local-ttl=7",
             "--cache-size=0", f"--user={pwd.getpwuid(os.geteuid()).pw_name}", "--log-facility=-"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        server = f"127.0.0.1:{port}"
        # ready when it answers; bounded
        for _ in range(100):
            if process.poll() is not None:
                break
            try:
                resolve("app.test", 80, resolver=server, timeout=0.2)
                break
            except discovery.DnsError:
                time.sleep(0.05)
        if process.poll() is None:
            break
        process.stderr.close()  # lost a race for the port: try another
    else:
        pytest.fail(f"dnsmasq did not start: {process.stderr.read() if process.stderr else ''}")
    try:
        yield server, hosts, process
    finally:
        process.kill()  # by its PID: only the process this fixture started
        process.wait(5)
        process.stderr.close()


def reload_hosts(process, server, name, changed):
    """SIGHUP makes dnsmasq re-read its addn-hosts; returns once the answer
    for `name` satisfies changed(resolution-or-exception) (bounded)."""
    process.send_signal(signal.SIGHUP)
    for _ in range(200):
        try:
            outcome = resolve(name, 8000, resolver=server, timeout=0.5)
        except discovery.DnsError as exc:
            outcome = exc
        if changed(outcome):
            return outcome
        time.sleep(0.02)
    raise AssertionError(f"dnsmasq never answered the change for {name}: last {outcome!r}")


def test_discovery_against_dnsmasq(dnsmasq, monkeypatch):
    server, hosts, process = dnsmasq
    over_tcp = []
    real_query_tcp = discovery.query_tcp

    def counting_query_tcp(*args):
        over_tcp.append(args[4])  # the name
        return real_query_tcp(*args)
    monkeypatch.setattr(discovery, "query_tcp", counting_query_tcp)
    resolution = resolve("app.test", 8000, resolver=server)
    assert resolution.addresses == ["10.0.0.1:8000", "10.0.0.2:8000", "[fd00::1]:8000"]
    assert resolution.ttl == 7

    # a hundred A records do not fit 512 bytes: truncated over UDP, whole over TCP
    many = resolve("many.test", 80, resolver=server)
    assert len(many.addresses) == 100 and "10.9.0.100:80" in many.addresses
    assert over_tcp == ["many.test"]

    with pytest.raises(NameNotFound):
        resolve("nope.test", 80, resolver=server)

    static = Member("192.0.2.9:8000")
    pool = Pool("app", [static])
    finder = Discovery(pool, "app.test", 8000, resolver=server, resolve_interval=30.0)
    assert finder.refresh() == 7
    assert [m.address for m in pool.members] == ["192.0.2.9:8000", "10.0.0.1:8000", "10.0.0.2:8000", "[fd00::1]:8000"]
    view = type("View", (), {"method": "GET", "path": "/", "client_ip": "192.0.2.1", "header": lambda self, name: None})()
    for _ in range(40):
        chosen = pool.pick(view, 0.0)
        chosen.requests += 1
    leaving, staying = pool.by_address["10.0.0.1:8000"], pool.by_address["10.0.0.2:8000"]
    assert leaving.requests == staying.requests == 10
    leaving.active = 1  # a request in flight on the member about to leave

    # the records change while traffic goes on: 10.0.0.1 and fd00::1 leave, 10.0.0.3 joins
    write_hosts(hosts, [("10.0.0.2", "app.test"), ("10.0.0.3", "app.test")])
    reload_hosts(process, server, "app.test", lambda outcome: getattr(outcome, "addresses", None) == ["10.0.0.2:8000", "10.0.0.3:8000"])
    finder.refresh()
    states = {m.address: m.state for m in pool.members}
    assert states == {"192.0.2.9:8000": "up", "10.0.0.1:8000": "draining", "10.0.0.2:8000": "up",
                      "[fd00::1]:8000": "draining", "10.0.0.3:8000": "up"}
    assert pool.by_address["10.0.0.2:8000"] is staying and staying.requests == 10
    picked = {pool.pick(view, 0.0).address for _ in range(60)}
    assert picked == {"192.0.2.9:8000", "10.0.0.2:8000", "10.0.0.3:8000"}
    assert [m.address for m in pool.reap()] == ["[fd00::1]:8000"]  # 10.0.0.1 still has a request
    leaving.active = 0
    assert pool.reap() == [leaving]

    # the name goes away: NXDOMAIN drains its members, the static one stays
    write_hosts(hosts, [("10.9.0.1", "many.test")])
    reload_hosts(process, server, "app.test", lambda outcome: isinstance(outcome, NameNotFound))
    finder.refresh()
    assert {m.address for m in pool.members if m.state == "up"} == {"192.0.2.9:8000"}


def test_discovery_thread_fills_the_pool_from_dnsmasq(dnsmasq):
    server, hosts, process = dnsmasq
    pool = Pool("app", [])
    finder = Discovery(pool, "app.test", 8000, resolver=server)
    finder.start()
    try:
        for _ in range(200):
            if len(pool.members) == 3:
                break
            time.sleep(0.02)
        assert sorted(m.address for m in pool.members) == ["10.0.0.1:8000", "10.0.0.2:8000", "[fd00::1]:8000"]
    finally:
        finder.stop()
    assert finder.thread is None
