# Interface of fastcore._core.buffer: the per-connection output queue.
# It keeps a reference to every bytes object queued until it is fully
# written; file segments hold a descriptor that their owner (the response)
# closes. flush() never blocks: the socket is non-blocking, and it writes
# at most `budget` bytes (a bandwidth limit's allowance).
from libc.stdint cimport int64_t
from fastcore._core.includes.fc_tls cimport fc_tls_conn_t


cdef class FileSegment:
    cdef int fd                  # a dup() of the file's descriptor, closed on dealloc; or, with
    cdef object owner            # an owner, the owner's descriptor, kept open by this reference
    cdef int64_t offset
    cdef int64_t remaining

    @staticmethod
    cdef FileSegment borrowed(int fd, int64_t offset, int64_t count, object owner)


cdef class OutputQueue:
    cdef list items              # bytes or FileSegment, oldest first
    cdef Py_ssize_t first        # index of the oldest item not fully written
    cdef size_t first_offset     # bytes of items[first] already written
    cdef readonly size_t pending # bytes still to write
    cdef size_t written          # bytes written by the last flush()

    cdef int push(self, bytes data) except -1
    cdef int push_file(self, FileSegment segment) except -1
    cdef int flush(self, int fd, size_t budget) except -1   # budget: most bytes to write (SIZE_MAX: no limit)
    cdef int flush_tls(self, fc_tls_conn_t *tls, size_t budget) except -1   # the same through a TLS session
    cdef void clear(self) noexcept
