# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Who the client is, decided once per request.

Theory of operation
-------------------
A connection's peer is whoever opened the socket: behind a CDN or a
balancer, the proxy. Peers inside forwarded_allow_ips are trusted to name
the client in real_ip_header; the client is the rightmost address of that
field that is not itself trusted (src_c/fc_realip.h has the walk). From any
other peer the field is ignored: a client cannot pick its own address by
sending X-Forwarded-For.

Connection keeps the result (connection.pxd: client_addr, client_host), and
REMOTE_ADDR, the access logs, a proxy location's X-Real-IP and hash key, and
the limits (limits.pyx) read it there. Whether the peer is trusted is
decided once per connection, at accept; the field is read once per request,
at its head, and only from a trusted peer.
"""
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset

from fastcore._core.includes.fc_realip cimport (
    FC_REALIP_CF_CONNECTING_IP, FC_REALIP_FORWARDED, FC_REALIP_X_FORWARDED_FOR, FC_REALIP_X_REAL_IP,
    fc_addr_format, fc_addr_parse, fc_cidr_contains, fc_cidr_parse, fc_forwarded_proto, fc_realip_walk,
)
from fastcore._core.includes.syscalls cimport AF_INET, AF_INET6, sockaddr_in, sockaddr_in6

cdef dict KINDS = {
    "X-Forwarded-For": FC_REALIP_X_FORWARDED_FOR,
    "X-Real-IP": FC_REALIP_X_REAL_IP,
    "CF-Connecting-IP": FC_REALIP_CF_CONNECTING_IP,
    "Forwarded": FC_REALIP_FORWARDED,
}


cdef class NetworkSet:
    """Networks from CIDR texts ("10.0.0.0/8", "::1", "*" for everyone),
    checked by fastcore.config before they come here."""

    def __cinit__(self, networks=()):
        cdef bytes raw
        cdef list items = [str(item) for item in networks if str(item) != "*"]
        self.everyone = len(items) != len(networks)
        self.nets = <fc_cidr_t *>calloc(len(items) or 1, sizeof(fc_cidr_t))
        if self.nets == NULL:
            raise MemoryError()
        for item in items:
            raw = item.encode("ascii")
            if fc_cidr_parse(raw, len(raw), &self.nets[self.count]) != 0:
                raise ValueError(f"not a network: {item!r}")
            self.count += 1

    def __dealloc__(self):
        free(self.nets)

    cdef bint contains(self, const uint8_t *addr) noexcept:
        return self.everyone or fc_cidr_contains(self.nets, self.count, addr)

    def __contains__(self, str address):
        """For tests: is this address (text) in the set?"""
        cdef uint8_t addr[16]
        cdef bytes raw = address.encode("ascii")
        if fc_addr_parse(raw, len(raw), addr) != 0:
            raise ValueError(f"not an address: {address!r}")
        return self.contains(addr)

    def __bool__(self):
        return self.everyone or self.count > 0


cdef class ClientResolver:
    """forwarded_allow_ips and real_ip_header of one worker."""

    def __cinit__(self, trusted, str header):
        self.trusted = NetworkSet(trusted)
        self.kind = KINDS[header]
        self.header = header
        self.name = header.lower().encode("ascii")
        self.name_at = self.name
        self.name_len = len(self.name)

    cdef bint trusts(self, const uint8_t *peer) noexcept:
        return self.trusted.contains(peer)

    cdef bint resolve(self, const fc_header_t *fields, size_t count, uint8_t *client, int *proto) noexcept:
        """One pass over a trusted peer's request fields, the last one first:
        walks those named real_ip_header (client holds the peer on entry and
        the client on return) and reads the last X-Forwarded-Proto into
        *proto (FC_PROTO_HTTP, FC_PROTO_HTTPS, 0: none or another word).
        True if a real_ip_header field was found (the client may still be
        the peer: a field of garbage)."""
        cdef const char *name = self.name_at
        cdef size_t name_len = self.name_len
        cdef size_t i = count
        cdef const fc_header_t *f
        cdef bint found = False, walking = True, proto_seen = False
        proto[0] = 0
        while i > 0:
            i -= 1
            f = &fields[i]
            if f.name.len == name_len:
                if walking and same_name(f.name.at, name, name_len):
                    found = True
                    walking = not fc_realip_walk(self.kind, f.value.at, f.value.len, self.trusted.nets,
                                                 self.trusted.count, client)
            elif f.name.len == 17 and not proto_seen and same_name(f.name.at, "x-forwarded-proto", 17):
                proto_seen = True
                proto[0] = fc_forwarded_proto(f.value.at, f.value.len)
        return found

    def client_of(self, str peer, headers):
        """For tests: the client of a request from peer with headers [(name, value)]."""
        cdef uint8_t addr[16]
        cdef bytes raw = peer.encode("ascii")
        if fc_addr_parse(raw, len(raw), addr) != 0:
            raise ValueError(f"not an address: {peer!r}")
        if not self.trusts(addr):
            return peer
        for name, value in reversed(list(headers)):
            if name.lower() != self.header.lower():
                continue
            data = value.encode("latin-1")
            if fc_realip_walk(self.kind, data, len(data), self.trusted.nets, self.trusted.count, addr):
                break
        return address_text(addr)


cdef inline bint same_name(const char *name, const char *lower, size_t n) noexcept:
    """A field name (any case) equals `lower` (a lower-case token)."""
    cdef size_t k = 0
    while k < n and (<unsigned char>name[k] | 0x20) == <unsigned char>lower[k]:
        k += 1
    return k == n


cdef void address_of(const sockaddr_storage *peer, uint8_t *out) noexcept:
    memset(out, 0, 16)
    if peer.ss_family == AF_INET:
        out[10] = 0xff
        out[11] = 0xff
        memcpy(out + 12, &(<const sockaddr_in *>peer).sin_addr, 4)
    elif peer.ss_family == AF_INET6:
        memcpy(out, &(<const sockaddr_in6 *>peer).sin6_addr, 16)


cdef str address_text(const uint8_t *addr):
    cdef char text[64]
    cdef size_t n = fc_addr_format(addr, text, sizeof(text))
    return text[:n].decode("ascii")
