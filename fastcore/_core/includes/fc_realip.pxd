# Declarations of src_c/fc_realip.h (who the client is: addresses, networks,
# the walk through trusted proxies' forwarding fields).
from libc.stdint cimport uint8_t


cdef extern from "fc_realip.h" nogil:
    ctypedef struct fc_cidr_t:
        uint8_t addr[16]
        uint8_t bits

    ctypedef enum fc_realip_kind_t:
        FC_REALIP_X_FORWARDED_FOR
        FC_REALIP_X_REAL_IP
        FC_REALIP_CF_CONNECTING_IP
        FC_REALIP_FORWARDED

    int fc_addr_is_v4(const uint8_t *addr)
    int fc_addr_parse(const char *at, size_t len, uint8_t *out)
    int fc_cidr_parse(const char *at, size_t len, fc_cidr_t *out)
    int fc_cidr_contains(const fc_cidr_t *set, size_t n, const uint8_t *addr)
    int fc_realip_walk(fc_realip_kind_t kind, const char *value, size_t len, const fc_cidr_t *trusted,
                       size_t n_trusted, uint8_t *client)
    enum:
        FC_PROTO_HTTP
        FC_PROTO_HTTPS
    int fc_forwarded_proto(const char *value, size_t len)
    size_t fc_addr_format(const uint8_t *addr, char *out, size_t size)
