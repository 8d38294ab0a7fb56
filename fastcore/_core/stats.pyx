# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""A worker's stats block over shared memory (src_c/fc_stats.h)."""
from cpython.buffer cimport PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from libc.stdint cimport uint64_t
from libc.string cimport memset

from fastcore._core.includes.fc_stats cimport FC_DURATION_BUCKETS, fc_worker_stats_t

# upper bounds of the duration buckets, seconds; fastcore/stats_layout.py has the same
cdef double BUCKETS[13]
BUCKETS[:] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]

SIZE = sizeof(fc_worker_stats_t)


cdef class WorkerStats:
    """Counters of one worker in a writable buffer of at least SIZE bytes
    (an anonymous shared mmap made by the arbiter before fork, or any
    bytearray for a worker that runs alone)."""

    def __cinit__(self, buffer):
        PyObject_GetBuffer(buffer, &self.view, PyBUF_WRITABLE)
        if <size_t>self.view.len < sizeof(fc_worker_stats_t):
            PyBuffer_Release(&self.view)
            raise ValueError(f"stats buffer too small: {self.view.len} < {sizeof(fc_worker_stats_t)}")
        self.owner = buffer
        self.s = <fc_worker_stats_t *>self.view.buf

    def __dealloc__(self):
        if self.s != NULL:
            PyBuffer_Release(&self.view)

    def reset(self, int pid, uint64_t started_ns):
        memset(self.s, 0, sizeof(fc_worker_stats_t))
        self.s.pid = pid
        self.s.started_ns = started_ns

    def set_heartbeat(self, uint64_t monotonic_ns):
        self.s.heartbeat_ns = monotonic_ns

    def set_draining(self, bint draining):
        self.s.draining = draining

    @property
    def requests(self):
        return self.s.requests

    cdef void record_response(self, int status, uint64_t sent, double seconds) noexcept:
        cdef fc_worker_stats_t *s = self.s
        cdef uint64_t *buckets = &s.duration_le_0
        cdef int i
        s.requests += 1
        if status < 200:
            s.status_1xx += 1
        elif status < 300:
            s.status_2xx += 1
        elif status < 400:
            s.status_3xx += 1
        elif status < 500:
            s.status_4xx += 1
        else:
            s.status_5xx += 1
        s.bytes_sent += sent
        s.duration_sum_us += <uint64_t>(seconds * 1e6)
        for i in range(FC_DURATION_BUCKETS):
            if seconds <= BUCKETS[i]:
                buckets[i] += 1
                return
        s.duration_inf += 1

    def record(self, int status, uint64_t sent, double seconds):
        """record_response for Python callers and tests."""
        self.record_response(status, sent, seconds)
