# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Output queue of a connection (a socket): bytes go out with writev (up to
64 pieces per call; one piece alone with send, which skips the VFS layer
and the iovec's copy), file segments with sendfile from the page cache. flush() writes
what the socket accepts, up to a budget, and returns 0 when the queue is
empty, 1 when the socket is full (EAGAIN) or the budget is spent: the
caller then waits for EPOLLOUT (or, for a spent budget, for its bandwidth
limit to allow more). A peer that has gone away raises ConnectionError."""
import os

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport SIZE_MAX, int64_t
from libc.string cimport memset
from posix.unistd cimport close

from fastcore._core.includes.syscalls cimport *
from fastcore._core.includes.fc_tls cimport FC_TLS_RECORD, fc_tls_conn_t, fc_tls_ktls_send, fc_tls_sendfile, fc_tls_writev

DEF MAX_IOV = 64


cdef int trim_iovecs(iovec *iov, int count, size_t budget) noexcept:
    """The number of iovecs that carry the first `budget` bytes (> 0), the
    last one shortened to end there."""
    cdef int i
    for i in range(count):
        if iov[i].iov_len >= budget:
            iov[i].iov_len = budget
            return i + 1
        budget -= iov[i].iov_len
    return count


cdef inline void consume_bytes(OutputQueue q, size_t n) noexcept:
    """Drops the first n bytes of the queue's leading bytes items (written)."""
    cdef size_t size
    q.pending -= n
    q.written += n
    while n:
        size = PyBytes_GET_SIZE(q.items[q.first]) - q.first_offset
        if n >= size:
            n -= size
            q.items[q.first] = None
            q.first += 1
            q.first_offset = 0
        else:
            q.first_offset += n
            n = 0


cdef inline void consume_file(OutputQueue q, FileSegment seg, size_t n) noexcept:
    """Counts n bytes of the leading file segment as written (sendfile moved
    its offset); a finished segment leaves the queue."""
    seg.remaining -= n
    q.pending -= n
    q.written += n
    if seg.remaining == 0:
        q.items[q.first] = None
        q.first += 1


cdef inline int gather_bytes(OutputQueue q, iovec *iov, size_t most, Py_ssize_t *after) noexcept:
    """iovecs over the consecutive bytes items at the head of the queue (the
    first from first_offset), until a file segment, MAX_IOV of them, or once
    `most` bytes are gathered; *after is the index of the item that stopped
    it. Returns how many."""
    cdef int count = 0
    cdef size_t gathered = 0
    cdef Py_ssize_t i = q.first, n_items = len(q.items)
    cdef object item
    while i < n_items and count < MAX_IOV and gathered < most:
        item = q.items[i]
        if type(item) is not bytes:
            break
        iov[count].iov_base = PyBytes_AS_STRING(item)
        iov[count].iov_len = PyBytes_GET_SIZE(item)
        if count == 0:
            iov[0].iov_base = <char *>iov[0].iov_base + q.first_offset
            iov[0].iov_len -= q.first_offset
        gathered += iov[count].iov_len
        count += 1
        i += 1
    after[0] = i
    return count


cdef class FileSegment:
    """count bytes of a regular file from offset, sent with sendfile. It owns
    a duplicate of the descriptor, so the application may close its file
    object as soon as it is done with it."""

    def __init__(self, int fd, int64_t offset, int64_t count):
        self.fd = os.dup(fd)
        self.offset = offset
        self.remaining = count

    @staticmethod
    cdef FileSegment borrowed(int fd, int64_t offset, int64_t count, object owner):
        """A segment of a descriptor that `owner` (the file cache's entry)
        closes when it is freed: no dup(), and the reference held here keeps
        it open until the segment is sent, even if the cache evicts it."""
        cdef FileSegment seg = FileSegment.__new__(FileSegment)
        seg.fd = fd
        seg.owner = owner
        seg.offset = offset
        seg.remaining = count
        return seg

    def __cinit__(self):
        self.fd = -1

    def __dealloc__(self):
        if self.fd >= 0 and self.owner is None:
            close(self.fd)


cdef class OutputQueue:
    # `items` is None while the queue is empty: idle connections hold no list

    cdef int push(self, bytes data) except -1:
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
        if n:
            if self.items is None:
                self.items = []
            self.items.append(data)
            self.pending += n
        return 0

    cdef int push_file(self, FileSegment segment) except -1:
        if segment.remaining > 0:
            if self.items is None:
                self.items = []
            self.items.append(segment)
            self.pending += segment.remaining
        return 0

    cdef void clear(self) noexcept:
        self.items = None
        self.first = 0
        self.first_offset = 0
        self.pending = 0

    cdef int flush(self, int fd, size_t budget) except -1:
        cdef iovec iov[MAX_IOV]
        cdef msghdr msg
        cdef int count
        cdef Py_ssize_t i, n_items
        cdef ssize_t n
        cdef size_t left, size
        cdef object item
        cdef FileSegment seg
        cdef bint limited
        self.written = 0
        while self.pending:
            if budget == 0:
                return 1
            n_items = len(self.items)
            item = self.items[self.first]
            if type(item) is FileSegment:
                seg = <FileSegment>item
                size = <size_t>min(seg.remaining, 1 << 30)
                if size > budget:
                    size = budget  # sendfile sends no more than the allowance
                n = sendfile(fd, seg.fd, &seg.offset, size)
                if n < 0:
                    if errno == EAGAIN or errno == EINTR:
                        return 1
                    raise ConnectionError(errno, f"sendfile: {os.strerror(errno)}")
                if n == 0:
                    raise ConnectionError(0, "sendfile: file shorter than its declared size")
                budget -= <size_t>n
                consume_file(self, seg, <size_t>n)
                continue
            # consecutive bytes items go out in one writev
            count = gather_bytes(self, iov, SIZE_MAX, &i)
            limited = budget < self.pending
            if limited:
                # a bandwidth limit's allowance: the iovecs past it are cut
                count = trim_iovecs(iov, count, budget)
            if i < n_items and type(self.items[i]) is FileSegment and not limited:
                # a file follows (a response head before its body): MSG_MORE
                # lets the kernel fill whole segments with head and file
                # together, as TCP_CORK would, instead of sending the head alone
                memset(&msg, 0, sizeof(msg))
                msg.msg_iov = iov
                msg.msg_iovlen = count
                n = sendmsg(fd, &msg, MSG_MORE | MSG_NOSIGNAL)
            elif count == 1:
                # send, not writev: no VFS layer and no iovec copy (the usual
                # small response, head and body in one buffer)
                n = send(fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL)
            else:
                n = writev(fd, iov, count)
            if n < 0:
                if errno == EAGAIN or errno == EINTR:
                    return 1
                raise ConnectionError(errno, f"write: {os.strerror(errno)}")
            budget -= <size_t>n
            consume_bytes(self, <size_t>n)
        self.items = None
        self.first = 0
        self.first_offset = 0
        return 0

    cdef int flush_tls(self, fc_tls_conn_t *tls, size_t budget) except -1:
        """flush() through a TLS session: bytes items coalesced into records
        of up to 16 KiB (fc_tls_writev), file segments read and encrypted a
        record at a time (fc_tls_sendfile), or, under kernel TLS
        (ssl_ktls), sent whole with sendfile. Same returns and errors as
        flush()."""
        cdef iovec iov[MAX_IOV]
        cdef int count
        cdef Py_ssize_t i
        cdef ssize_t n
        cdef size_t size
        cdef object item
        cdef FileSegment seg
        self.written = 0
        if budget < tls.retry_len:
            budget = tls.retry_len  # a record OpenSSL has begun must be offered whole again
        while self.pending:
            if budget == 0:
                return 1
            item = self.items[self.first]
            if type(item) is FileSegment:
                seg = <FileSegment>item
                size = <size_t>seg.remaining if fc_tls_ktls_send(tls) else <size_t>min(seg.remaining, FC_TLS_RECORD)
                if size > budget:
                    size = budget
                n = fc_tls_sendfile(tls, seg.fd, &seg.offset, size)
                if n < 0:
                    if errno == EAGAIN or errno == EINTR:
                        return 1
                    raise ConnectionError(errno, f"TLS write of a file: {os.strerror(errno)}")
                if n == 0:
                    raise ConnectionError(0, "TLS write of a file: file shorter than its declared size")
                budget -= <size_t>n
                consume_file(self, seg, <size_t>n)
                continue
            # consecutive bytes items, a record's worth at most, in one record
            count = gather_bytes(self, iov, FC_TLS_RECORD, &i)
            count = trim_iovecs(iov, count, budget)
            n = fc_tls_writev(tls, iov, count)
            if n < 0:
                if errno == EAGAIN or errno == EINTR:
                    return 1
                raise ConnectionError(errno, f"TLS write: {os.strerror(errno)}")
            budget -= <size_t>n
            consume_bytes(self, <size_t>n)
        self.items = None
        self.first = 0
        self.first_offset = 0
        return 0

