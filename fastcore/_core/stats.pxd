# Interface of fastcore._core.stats: a worker's shared stats block. The
# object keeps the buffer it was given (an mmap shared with the arbiter)
# alive; `s` points into it. Counters are bumped by the loop, the
# connections and the gateway on the loop thread only.
from libc.stdint cimport uint64_t
from fastcore._core.includes.fc_stats cimport fc_worker_stats_t


cdef class WorkerStats:
    cdef fc_worker_stats_t *s
    cdef object owner                 # the buffer's exporter (keeps the memory mapped)
    cdef Py_buffer view

    cdef void record_response(self, int status, uint64_t sent, double seconds) noexcept
