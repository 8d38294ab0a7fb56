# Declarations of src_c/fc_limits.h (the shared per-client limits table).
from libc.stdint cimport int32_t, uint8_t, uint32_t, uint64_t


cdef extern from "fc_limits.h" nogil:
    enum:
        FC_LIMIT_WAYS

    ctypedef struct fc_limits_t:
        uint64_t magic
        uint64_t buckets
        uint64_t seed
        uint64_t evictions

    ctypedef struct fc_limit_key_t:
        uint64_t prefix
        uint32_t tag

    ctypedef struct fc_limit_rule_t:
        uint64_t rate
        uint64_t burst
        uint32_t conn
        int dry_run

    ctypedef enum fc_limit_result_t:
        FC_LIMIT_PASS
        FC_LIMIT_DELAY
        FC_LIMIT_RATE
        FC_LIMIT_CONN

    uint64_t FC_LIMITS_MAGIC
    size_t fc_limits_size(size_t entries)
    void fc_limits_init(fc_limits_t *t, size_t entries, uint64_t seed)
    size_t fc_limits_capacity(const fc_limits_t *t)
    fc_limit_key_t fc_limit_key(const uint8_t *addr, uint32_t zone)
    fc_limit_result_t fc_limit_request(fc_limits_t *t, fc_limit_key_t key, uint64_t now_ms,
                                       const fc_limit_rule_t *rule, uint64_t *wait_ms)
    void fc_limit_release(fc_limits_t *t, fc_limit_key_t key)
    size_t fc_limits_used(fc_limits_t *t, size_t *with_conns)
