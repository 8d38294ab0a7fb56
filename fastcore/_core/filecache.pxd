# Interface of fastcore._core.filecache: a worker's open-file cache.
#
# The cache owns its entries; an entry owns its descriptor (closed when the
# entry is freed, not when it is evicted: a response still being sent holds
# a reference to the entry and so keeps the descriptor open until done).
# Files up to inline_max keep their bytes in `content` and no descriptor.
# The HTTP side (fastcore._core.static) keeps its prebuilt response heads in
# the entry; they go with it when the file changes.
from libc.stdint cimport int64_t, uint64_t


cdef class Root:
    """A location's directory, held open (O_PATH) and re-resolved at most
    once per revalidation window, so that a deploy that flips a symbolic
    link (current -> releases/N) is followed."""
    cdef int fd
    cdef bytes path              # as configured (absolute, links not resolved)
    cdef bytes real              # its real path, for the real-path check
    cdef bint beneath            # symbolic links may not lead outside
    cdef bytes tag               # prefix of this root's cache keys; new when the directory changes
    cdef uint64_t dev
    cdef uint64_t ino
    cdef double checked          # loop time of the last resolution

    cdef int refresh(self, double now, double interval) except -1
    cdef int _open(self) except -1


cdef class CachedFile:
    cdef bytes key
    cdef int fd                  # -1 when the content is in memory
    cdef bytes content           # the whole file, when size <= inline_max
    cdef uint64_t size
    cdef int64_t mtime_ns
    cdef int64_t mtime           # seconds, as sent in Last-Modified
    cdef uint64_t ino
    cdef uint64_t dev
    cdef unsigned siblings       # FC_ENC_* bits: FILE.gz / FILE.br exist (plain entries only)
    cdef unsigned encoding       # FC_ENC_* bit of a precompressed variant, 0 for the file itself
    cdef double checked          # loop time of the last stat
    cdef bytes etag              # b'"size-mtime-inode"' (hex), strong
    cdef bytes last_modified     # IMF-fixdate
    cdef object heads            # the static handler's prebuilt heads, or None
    cdef CachedFile prev         # LRU list: prev is more recently used
    cdef CachedFile next
    cdef bint linked


cdef class FileCache:
    cdef dict entries            # key -> CachedFile
    cdef CachedFile newest
    cdef CachedFile oldest
    cdef readonly size_t count
    cdef readonly size_t content_bytes
    cdef readonly size_t descriptors
    cdef size_t max_entries
    cdef size_t max_bytes
    cdef size_t max_fds
    cdef size_t inline_max
    cdef double revalidate
    cdef bint etag_inode         # the inode is part of the ETag
    cdef readonly unsigned long long hits
    cdef readonly unsigned long long misses
    cdef public int error        # errno of the last failed lookup (ENOENT, EISDIR, EXDEV, ...)

    cdef CachedFile lookup(self, Root root, bytes rel, unsigned encoding, bint want_siblings, double now)
    cdef int _check_siblings(self, CachedFile entry, Root root, bytes rel) except -1
    cdef bint _unchanged(self, CachedFile entry, Root root, bytes path) noexcept
    cdef CachedFile _open(self, Root root, bytes path, bytes key, double now)
    cdef int _insert(self, CachedFile entry) except -1
    cdef int _remove(self, CachedFile entry) except -1
    cdef void _touch(self, CachedFile entry) noexcept
    cdef void _unlink(self, CachedFile entry) noexcept
    cdef void _link_newest(self, CachedFile entry) noexcept
