"""DNS names as pool members: resolve a name to its addresses, and keep a
pool in step with them.

Theory of operation
-------------------
`resolve(name, port, resolver)` returns the name's IPv4 and IPv6 addresses as
member addresses ("10.0.0.2:8000", "[fd00::2]:8000") and the smallest TTL of
the records that produced them.

- With `resolver` ("HOST:PORT" of a DNS server, the top-level `resolver`
  setting) it is a stub resolver of its own: one A and one AAAA query with
  recursion desired, over UDP (RFC 1035 section 4.2.1), again over TCP when
  the answer comes back truncated (section 4.2.2, the TC bit: we send no
  EDNS0, so anything beyond 512 bytes is truncated). The TTL is the smallest
  of the address records and of the CNAMEs leading to them. We do not depend
  on dnspython, and a worker needs only this much DNS.
- Without it, the system's resolver (getaddrinfo: /etc/hosts, nsswitch,
  search domains) answers and the TTL is unknown (None).

The parser is strict because its input comes off the network: every length
is checked against the packet, a compression pointer must point backwards
(RFC 1035 section 4.1.4 allows only earlier occurrences, which also makes a
loop impossible) and a name may take at most MAX_POINTER_JUMPS jumps and
255 bytes. Replies whose ID, source or question do not match ours are
ignored (late or spoofed), the ID is unpredictable (`secrets`).

Answers and errors:
- NOERROR with addresses: those addresses.
- NOERROR with no address of either type (NODATA): an empty list; the TTL is
  the negative-caching TTL from the SOA in the authority section if any
  (RFC 2308 section 5: the smaller of the SOA's TTL and its MINIMUM).
- NXDOMAIN: NameNotFound. SERVFAIL, REFUSED and the rest: ServerFailure.
  No answer in time: ResolveTimeout. A malformed reply: MalformedReply.

`Discovery` re-resolves one name every `resolve_interval` seconds, sooner
when the TTL is shorter, never sooner than MINIMUM_RESOLVE_INTERVAL (a TTL
of 0, which dnsmasq gives local names by default, must not become a busy
loop). Each result is applied to the pool with `replace`: every address is a
member, addresses that left are drained (their requests in flight finish),
addresses that stay keep their member and counters. Only the members this
Discovery created are touched: static addresses and other names in the same
pool stay. What to do when DNS says nothing useful:
- NameNotFound, or NODATA: the DNS server says authoritatively that the name
  has no address (a Kubernetes headless Service scaled to zero, a Consul
  service with no healthy instance): the name's members are drained.
- timeout, ServerFailure, MalformedReply, a network error: nothing is known,
  so the pool keeps the last addresses (nginx Plus and Envoy keep them too)
  and the next try comes after RETRY_AFTER_ERROR.

Resolving blocks, so Discovery runs it on a thread of its own and hands the
change to the pool's thread through `apply` (in a worker,
`loop.call_soon_threadsafe`): the pool is only ever changed by the loop
thread, between two picks.

Names are absolute: the stub resolver applies no search domain (in
Kubernetes, write the full name: app.namespace.svc.cluster.local).
"""
import ipaddress
import logging
import secrets
import socket
import struct
import threading
import time
from typing import NamedTuple, Optional

from fastcore.proxy.balancer import Member

__all__ = ["resolve", "Discovery", "Resolution", "DnsError", "NameNotFound", "ServerFailure",
           "ResolveTimeout", "MalformedReply", "build_query", "parse_reply",
           "MINIMUM_RESOLVE_INTERVAL"]

error_log = logging.getLogger("fastcore.error")

TYPE_A = 1
TYPE_NS = 2
TYPE_CNAME = 5
TYPE_SOA = 6
TYPE_AAAA = 28
CLASS_IN = 1

RCODE_NOERROR = 0
RCODE_NXDOMAIN = 3

# Header flags (RFC 1035 section 4.1.1)
FLAG_RESPONSE = 0x8000
FLAG_TRUNCATED = 0x0200
FLAG_RECURSION_DESIRED = 0x0100
OPCODE_MASK = 0x7800
RCODE_MASK = 0x000F

MAX_NAME_LENGTH = 255        # RFC 1035 section 2.3.4, in wire form
MAX_LABEL_LENGTH = 63
MAX_POINTER_JUMPS = 16       # backwards pointers already bound it; this keeps it cheap
MAX_CNAME_CHAIN = 8          # a longer chain in one answer is a misconfiguration
MAX_UDP_REPLY = 512          # RFC 1035 section 2.3.4 without EDNS0 (we send none)

# Never re-resolve more often than this, whatever the TTL says.
MINIMUM_RESOLVE_INTERVAL = 1.0
# After a failed resolution, try again this soon (or at resolve_interval if shorter).
RETRY_AFTER_ERROR = 5.0


class DnsError(Exception):
    """A name could not be resolved."""


class NameNotFound(DnsError):
    """The name does not exist (NXDOMAIN)."""

    def __init__(self, message, ttl=None):
        super().__init__(message)
        self.ttl = ttl


class ServerFailure(DnsError):
    """The DNS server answered with an error code other than NXDOMAIN."""


class ResolveTimeout(DnsError):
    """No usable answer within the timeout."""


class MalformedReply(DnsError):
    """The reply breaks RFC 1035 (lengths, pointers, question)."""


class Resolution(NamedTuple):
    """Member addresses ("10.0.0.2:8000", "[fd00::2]:8000") and the smallest
    TTL in seconds, None when unknown (system resolver)."""
    addresses: list
    ttl: Optional[int]


class Reply(NamedTuple):
    """What parse_reply read from one reply."""
    rcode: int
    truncated: bool
    addresses: list         # ip strings of the asked type
    ttl: Optional[int]      # smallest TTL along the CNAME chain and addresses;
                            # for an answer without addresses, the SOA's negative TTL


# -- the wire format -------------------------------------------------------------


def encode_name(name):
    """The wire form of a domain name (labels, then the root's zero byte)."""
    name = name.rstrip(".")
    if not name:
        raise ValueError("empty DNS name")
    try:
        ascii_name = name.encode("idna")
    except UnicodeError as exc:
        raise ValueError(f"{name!r} is not a valid DNS name: {exc}") from None
    wire = bytearray()
    for label in ascii_name.split(b"."):
        if not 0 < len(label) <= MAX_LABEL_LENGTH:
            raise ValueError(f"{name!r}: a label is empty or longer than {MAX_LABEL_LENGTH}")
        wire.append(len(label))
        wire += label
    wire.append(0)
    if len(wire) > MAX_NAME_LENGTH:
        raise ValueError(f"{name!r} is longer than {MAX_NAME_LENGTH} bytes")
    return bytes(wire)


def build_query(name, record_type, query_id):
    """A standard query (RFC 1035 section 4.1) for one name and type, with
    recursion desired: we ask a recursive resolver, we do not recurse."""
    header = struct.pack(">HHHHHH", query_id, FLAG_RECURSION_DESIRED, 1, 0, 0, 0)
    return header + encode_name(name) + struct.pack(">HH", record_type, CLASS_IN)


def read_name(packet, offset):
    """The name at `offset` (lowercased, dotted, no trailing dot) and the
    offset just after it in the record that holds it."""
    labels = []
    wire_length = 1
    end = None  # where the record continues, fixed at the first pointer
    jumps = 0
    while True:
        if offset >= len(packet):
            raise MalformedReply("name runs past the end of the packet")
        length = packet[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(packet):
                raise MalformedReply("compression pointer cut off")
            target = ((length & 0x3F) << 8) | packet[offset + 1]
            # a pointer refers to a prior occurrence (RFC 1035 4.1.4):
            # pointing at or after itself would allow a loop
            if target >= offset:
                raise MalformedReply(f"compression pointer at {offset} does not point backwards")
            jumps += 1
            if jumps > MAX_POINTER_JUMPS:
                raise MalformedReply("too many compression pointers in one name")
            if end is None:
                end = offset + 2
            offset = target
            continue
        if length & 0xC0:
            raise MalformedReply(f"reserved label type {length:#x}")
        offset += 1
        if length == 0:
            break
        if offset + length > len(packet):
            raise MalformedReply("label runs past the end of the packet")
        wire_length += length + 1
        if wire_length > MAX_NAME_LENGTH:
            raise MalformedReply("name longer than 255 bytes")
        labels.append(packet[offset:offset + length])
        offset += length
    name = b".".join(labels).decode("ascii", "replace").lower()
    return name, (end if end is not None else offset)


def read_u16_pair(packet, offset):
    if offset + 4 > len(packet):
        raise MalformedReply("record cut off")
    return struct.unpack_from(">HH", packet, offset)


def parse_reply(packet, query_id, name, record_type):
    """Reads a reply to build_query(name, record_type, query_id).

    Raises MalformedReply for a packet that breaks the format, or that
    answers another query (ID or question): the UDP reader ignores those.
    NXDOMAIN and other error codes are returned in `rcode`, not raised."""
    if len(packet) < 12:
        raise MalformedReply("shorter than a DNS header")
    reply_id, flags, question_count, answer_count, authority_count, additional_count = \
        struct.unpack_from(">HHHHHH", packet, 0)
    if reply_id != query_id:
        raise MalformedReply("reply ID does not match the query")
    if not flags & FLAG_RESPONSE or flags & OPCODE_MASK:
        raise MalformedReply("not a response to a standard query")
    rcode = flags & RCODE_MASK
    truncated = bool(flags & FLAG_TRUNCATED)
    if truncated:
        # the rest may be cut anywhere: the caller asks again over TCP
        return Reply(rcode, True, [], None)
    if question_count != 1:
        raise MalformedReply(f"{question_count} questions in a reply to one")
    asked = name.rstrip(".").encode("idna").decode("ascii").lower()
    question_name, offset = read_name(packet, 12)
    question_type, question_class = read_u16_pair(packet, offset)
    offset += 4
    if (question_name, question_type, question_class) != (asked, record_type, CLASS_IN):
        raise MalformedReply("reply to another question")

    records = []  # (section, owner, type, ttl, rdata offset, rdata length)
    for section, count in (("answer", answer_count), ("authority", authority_count),
                           ("additional", additional_count)):
        for _ in range(count):
            owner, offset = read_name(packet, offset)
            if offset + 10 > len(packet):
                raise MalformedReply("record header cut off")
            rtype, rclass, ttl, rdlength = struct.unpack_from(">HHIH", packet, offset)
            offset += 10
            if offset + rdlength > len(packet):
                raise MalformedReply("record data runs past the end of the packet")
            if ttl & 0x80000000:
                ttl = 0  # RFC 2181 section 8: a TTL with the top bit set means zero
            if rclass == CLASS_IN:
                records.append((section, owner, rtype, ttl, offset, rdlength))
            offset += rdlength
    if offset != len(packet):
        raise MalformedReply(f"{len(packet) - offset} bytes after the last record")

    # follow the CNAME chain from the asked name to the owner of the addresses
    aliases = {}
    for section, owner, rtype, ttl, start, length in records:
        if section == "answer" and rtype == TYPE_CNAME:
            target, after = read_name(packet, start)
            if after != start + length:
                raise MalformedReply("CNAME data length does not match its name")
            aliases[owner] = (target, ttl)
    owner_name = asked
    smallest_ttl = None
    for _ in range(MAX_CNAME_CHAIN + 1):
        if owner_name not in aliases:
            break
        owner_name, ttl = aliases[owner_name]
        smallest_ttl = ttl if smallest_ttl is None else min(smallest_ttl, ttl)
    else:
        raise MalformedReply(f"CNAME chain longer than {MAX_CNAME_CHAIN}")

    addresses = []
    address_length = 4 if record_type == TYPE_A else 16
    for section, owner, rtype, ttl, start, length in records:
        if section != "answer" or rtype != record_type or owner != owner_name:
            continue
        if length != address_length:
            raise MalformedReply(f"address record of {length} bytes")
        addresses.append(str(ipaddress.ip_address(packet[start:start + length])))
        smallest_ttl = ttl if smallest_ttl is None else min(smallest_ttl, ttl)
    if not addresses:
        smallest_ttl = negative_ttl(packet, records)
    return Reply(rcode, False, addresses, smallest_ttl)


def negative_ttl(packet, records):
    """RFC 2308 section 5: how long "no such data" holds, from the SOA in the
    authority section: the smaller of its TTL and its MINIMUM field."""
    for section, owner, rtype, ttl, start, length in records:
        if section == "authority" and rtype == TYPE_SOA:
            _, after = read_name(packet, start)          # MNAME
            _, after = read_name(packet, after)          # RNAME
            if after + 20 != start + length:
                raise MalformedReply("SOA data length does not match its fields")
            minimum = struct.unpack_from(">I", packet, after + 16)[0]
            return min(ttl, minimum)
    return None


# -- asking a server -----------------------------------------------------------------


def parse_server(resolver):
    """("HOST", PORT) and the family from "HOST:PORT" or "[IPV6]:PORT"."""
    if resolver.startswith("["):
        host, separator, port = resolver[1:].partition("]:")
    else:
        host, separator, port = resolver.rpartition(":")
    if not separator or not port.isdigit():
        raise ValueError(f"resolver {resolver!r}: expected HOST:PORT or [IPV6]:PORT")
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    return family, (host, int(port))


def query(resolver, name, record_type, timeout=2.0):
    """Asks `resolver` ("HOST:PORT") for one record type; returns a Reply.
    UDP first (one resend halfway through the timeout, since UDP loses
    packets), then TCP if the reply is truncated."""
    family, server = parse_server(resolver)
    query_id = secrets.randbits(16)
    packet = build_query(name, record_type, query_id)
    deadline = time.monotonic() + timeout
    with socket.socket(family, socket.SOCK_DGRAM) as udp:
        # connect() makes the kernel drop datagrams from any other source
        udp.connect(server)
        udp.send(packet)
        resend_at = time.monotonic() + timeout / 2
        reply = None
        while reply is None:
            now = time.monotonic()
            if now >= deadline:
                raise ResolveTimeout(f"{name}: no reply from {resolver} within {timeout:g}s")
            if resend_at is not None and now >= resend_at:
                udp.send(packet)
                resend_at = None
            udp.settimeout(max((resend_at or deadline) - now, 0.001))
            try:
                data = udp.recv(MAX_UDP_REPLY + 1)
            except socket.timeout:
                continue
            except ConnectionRefusedError:
                # an ICMP port unreachable came back: nothing listens there
                raise DnsError(f"{name}: {resolver} refuses UDP (no DNS server there)") from None
            try:
                reply = parse_reply(data, query_id, name, record_type)
            except MalformedReply:
                if data[:2] != packet[:2]:
                    continue  # another query's reply, or a forgery: keep waiting
                raise
    if reply.truncated:
        reply = query_tcp(server, family, packet, query_id, name, record_type, deadline, resolver)
    return reply


def query_tcp(server, family, packet, query_id, name, record_type, deadline, resolver):
    """The same query over TCP (RFC 1035 section 4.2.2: a two-byte length
    before each message)."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise ResolveTimeout(f"{name}: no time left to retry over TCP")
    try:
        with socket.create_connection(server, timeout=remaining) as tcp:
            tcp.sendall(struct.pack(">H", len(packet)) + packet)
            length = struct.unpack(">H", read_exactly(tcp, 2, deadline))[0]
            data = read_exactly(tcp, length, deadline)
    except socket.timeout:
        raise ResolveTimeout(f"{name}: no TCP reply from {resolver} in time") from None
    except OSError as exc:
        raise ResolveTimeout(f"{name}: TCP to {resolver}: {exc}") from None
    reply = parse_reply(data, query_id, name, record_type)
    if reply.truncated:
        raise MalformedReply("truncated reply over TCP")
    return reply


def read_exactly(sock, count, deadline):
    data = bytearray()
    while len(data) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout()
        sock.settimeout(remaining)
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise MalformedReply("TCP connection closed mid-reply")
        data += chunk
    return bytes(data)


def member_address(ip, port):
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def sort_addresses(ips):
    """IPv4 before IPv6, numeric order: the pool's order does not depend on
    how the server happened to order its records."""
    unique = {ipaddress.ip_address(ip) for ip in ips}
    return [str(ip) for ip in sorted(unique, key=lambda ip: (ip.version, ip))]


def resolve(name, port, resolver=None, timeout=2.0):
    """The addresses of `name` (A and AAAA) as member addresses for `port`,
    and the smallest TTL (None with the system resolver). An IP literal
    resolves to itself. Raises NameNotFound, ServerFailure, ResolveTimeout
    or MalformedReply (all DnsError)."""
    try:
        literal = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        return Resolution([member_address(str(literal), port)], None)
    if resolver is None:
        return resolve_with_system(name, port)
    found = []
    ttls = []
    not_found = 0
    negative_ttls = []
    for record_type in (TYPE_A, TYPE_AAAA):
        reply = query(resolver, name, record_type, timeout)
        if reply.rcode == RCODE_NXDOMAIN:
            not_found += 1
            if reply.ttl is not None:
                negative_ttls.append(reply.ttl)
            continue
        if reply.rcode != RCODE_NOERROR:
            raise ServerFailure(f"{name}: {resolver} answered rcode {reply.rcode}")
        found += reply.addresses
        if reply.ttl is not None:
            (ttls if reply.addresses else negative_ttls).append(reply.ttl)
    if not_found == 2:
        raise NameNotFound(f"{name}: no such name (NXDOMAIN from {resolver})",
                           min(negative_ttls) if negative_ttls else None)
    if not found:
        return Resolution([], min(negative_ttls) if negative_ttls else None)
    return Resolution([member_address(ip, port) for ip in sort_addresses(found)], min(ttls) if ttls else None)


def resolve_with_system(name, port):
    try:
        infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
            raise NameNotFound(f"{name}: {exc.strerror}") from None
        if exc.errno == socket.EAI_AGAIN:
            raise ResolveTimeout(f"{name}: {exc.strerror}") from None
        raise ServerFailure(f"{name}: {exc.strerror}") from None
    ips = [info[4][0] for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)]
    return Resolution([member_address(ip, port) for ip in sort_addresses(ips)], None)


# -- keeping a pool in step ----------------------------------------------------------


class Discovery:
    """Keeps the members of `pool` that stand for DNS name `name` in step
    with what it resolves to. Each member gets `weight`, `backup` and
    `max_conns`. `apply(function, *args)` runs a pool change on the pool's
    thread (default: at once, for a pool used by one thread, as in tests).

    refresh() resolves once and returns the delay until the next time;
    start() runs refresh in a daemon thread until stop()."""

    def __init__(self, pool, name, port, resolver=None, resolve_interval=30.0, weight=1, backup=False,
                 max_conns=0, timeout=2.0, apply=None, scheme=""):
        if resolve_interval < MINIMUM_RESOLVE_INTERVAL:
            raise ValueError(f"resolve_interval must be at least {MINIMUM_RESOLVE_INTERVAL:g}s")
        if resolver is not None:
            parse_server(resolver)  # refuse a bad setting at start, not at the first refresh
        self.pool = pool
        self.name = name
        self.port = port
        self.resolver = resolver
        self.resolve_interval = float(resolve_interval)
        self.member_options = {"weight": weight, "backup": backup, "max_conns": max_conns}
        # "https://": the members are TLS servers whose certificates carry the name
        self.scheme = scheme
        if scheme:
            self.member_options["server_name"] = name
        self.timeout = timeout
        self.apply = apply or (lambda function, *args: function(*args))
        self.owned = set()           # addresses this Discovery put in the pool
        self.last_addresses = None   # the last answer, None before the first
        self.last_error = None
        self.stopping = threading.Event()
        self.thread = None

    def refresh(self):
        """Resolves once, applies the answer, returns seconds until the next try."""
        try:
            resolution = resolve(self.name, self.port, self.resolver, self.timeout)
            ttl = resolution.ttl
            addresses = resolution.addresses
        except NameNotFound as exc:
            ttl, addresses = exc.ttl, []
            self.last_error = exc
            error_log.warning("discovery: %s; its members are drained", exc)
        except (DnsError, OSError) as exc:
            self.last_error = exc
            error_log.warning("discovery: resolving %s failed (%s); keeping its %d members",
                              self.name, exc, len(self.owned))
            return max(MINIMUM_RESOLVE_INTERVAL, min(self.resolve_interval, RETRY_AFTER_ERROR))
        else:
            self.last_error = None
        if addresses != self.last_addresses:
            self.apply(self.update_pool, list(addresses))
        self.last_addresses = addresses
        delay = self.resolve_interval if ttl is None else min(self.resolve_interval, ttl)
        return max(MINIMUM_RESOLVE_INTERVAL, delay)

    def update_pool(self, addresses):
        """On the pool's thread: the pool's members become the ones that are
        not this name's, plus one per address. Returns (joined, drained).
        Nothing once stopped: an answer that was in flight when the name was
        removed does not bring its members back."""
        if self.stopping.is_set():
            return None
        others = [m for m in self.pool.members if m.state != "draining" and m.address not in self.owned]
        other_addresses = {m.address for m in others}
        addresses = [self.scheme + address for address in addresses]
        mine = [Member(address, **self.member_options) for address in addresses
                if address not in other_addresses]  # an address also listed statically stays static
        result = self.pool.replace(others + mine)
        self.owned = {m.address for m in mine}
        return result

    def start(self):
        """Resolves now and then on schedule, on a daemon thread."""
        if self.thread is not None:
            return
        self.stopping.clear()
        self.thread = threading.Thread(target=self._run, name=f"discovery {self.name}", daemon=True)
        self.thread.start()

    def _run(self):
        delay = 0.0
        while not self.stopping.wait(delay):
            try:
                delay = self.refresh()
            except Exception:
                # a bug must not end discovery for good: log it and go on
                error_log.exception("discovery: refreshing %s", self.name)
                delay = max(MINIMUM_RESOLVE_INTERVAL, min(self.resolve_interval, RETRY_AFTER_ERROR))

    def stop(self, timeout=5.0):
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout)
            self.thread = None
