# Interface of fastcore._core.realip: who the client is. A NetworkSet is a
# list of networks in C memory (owned, freed with the object); a
# ClientResolver is forwarded_allow_ips plus real_ip_header, the one place a
# request's client address is decided (Connection.resolve_client calls it).
from libc.stdint cimport uint8_t
from fastcore._core.includes.fc_http cimport fc_header_t
from fastcore._core.includes.fc_realip cimport fc_cidr_t, fc_realip_kind_t
from fastcore._core.includes.syscalls cimport sockaddr_storage


cdef class NetworkSet:
    cdef fc_cidr_t *nets
    cdef readonly size_t count
    cdef bint everyone           # '*' (forwarded_allow_ips): every address, the unix socket's too

    cdef bint contains(self, const uint8_t *addr) noexcept


cdef class ClientResolver:
    cdef readonly NetworkSet trusted
    cdef fc_realip_kind_t kind
    cdef bytes name              # the field, lower case
    cdef const char *name_at     # its bytes (kept by name)
    cdef size_t name_len
    cdef readonly str header     # as configured, for messages

    cdef bint trusts(self, const uint8_t *peer) noexcept
    cdef bint resolve(self, const fc_header_t *fields, size_t count, uint8_t *client, int *proto) noexcept


# The 16-byte form (IPv4 mapped) of a socket address; zeros for a unix socket.
cdef void address_of(const sockaddr_storage *peer, uint8_t *out) noexcept

# The text of a 16-byte address (dotted for IPv4).
cdef str address_text(const uint8_t *addr)
