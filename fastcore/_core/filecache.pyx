# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The open-file cache of a worker.

Theory of operation
-------------------
lookup(root, rel) answers "which file is `rel` under this root now" from
memory for up to `revalidate` seconds after it last asked the disk. After
that window one fstatat() compares device, inode, size and modification
time with what the entry saw: unchanged, the entry stays (and its window
restarts); changed, replaced by rename, or gone, the entry is dropped and
the path is opened afresh, so a deploy that renames a new file over the old
one is served within one window.

Opening goes through fc_open_beneath (openat2 RESOLVE_BENEATH): the cache
never opens a path that leaves its root, whatever symbolic links say. Only
regular files are cached; a directory or anything else fails the lookup
with `error` set (EISDIR, EACCES), a missing file with ENOENT, a link out
of the root with EXDEV.

Bounds: at most max_entries entries, max_bytes of content held in memory
and max_fds descriptors kept open; inserting past a bound evicts the least
recently used entries. Files up to inline_max are read into memory once
and their descriptor closed (then a response is one writev); larger files
keep their descriptor for sendfile.

Entries are keyed by root tag + relative path, plus b"\\0.gz" / b"\\0.br" for
a precompressed variant (FILE.gz served as FILE with Content-Encoding).
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int64_t, uint64_t
from libc.stdio cimport snprintf
from posix.unistd cimport close

from fastcore._core.includes.fc_fs cimport (
    fc_fs_force_fallback, fc_fstat, fc_open_beneath, fc_openat2_state, fc_stat, fc_stat_beneath,
)
from fastcore._core.includes.fc_static cimport FC_ENC_BR, FC_ENC_GZIP, FC_HTTP_DATE_LEN, fc_http_date_format
from fastcore._core.includes.syscalls cimport *

cdef int next_root_id = 0


def openat2_state():
    """1: the kernel confines opens with openat2 RESOLVE_BENEATH; 0: it has no
    openat2 and the real-path check is used; -1: no file opened yet."""
    return fc_openat2_state()


def force_fallback(bint on):
    """Tests: behave as on a kernel without openat2."""
    fc_fs_force_fallback(on)


cdef class Root:

    def __init__(self, str path, bint beneath):
        self.path = path.encode("utf-8", "surrogateescape")
        self.beneath = beneath
        self.fd = -1
        self._open()

    cdef int _open(self) except -1:
        """(Re)opens the directory the configured path names now."""
        global next_root_id
        cdef struct_stat st
        cdef char resolved[PATH_MAX]
        cdef int fd = open(self.path, O_PATH | O_DIRECTORY | O_CLOEXEC)
        if fd < 0:
            raise OSError(errno, f"cannot open the static root {self.path.decode('utf-8', 'replace')}")
        if fc_fstat(fd, &st) != 0 or realpath(self.path, resolved) == NULL:
            close(fd)
            raise OSError(errno, f"cannot resolve the static root {self.path.decode('utf-8', 'replace')}")
        if self.fd >= 0:
            close(self.fd)
        self.fd = fd
        self.real = resolved
        self.dev = st.st_dev
        self.ino = st.st_ino
        next_root_id += 1
        self.tag = b"%d:" % next_root_id  # entries under the old directory are no longer found
        return 0

    cdef int refresh(self, double now, double interval) except -1:
        """At most once per interval: if the configured path now names
        another directory, serve from that one."""
        cdef struct_stat st
        if now - self.checked < interval:
            return 0
        self.checked = now
        if fc_stat(self.path, &st) != 0:
            return 0  # gone for now (mid-deploy): keep serving the directory held open
        if st.st_dev != self.dev or st.st_ino != self.ino:
            try:
                self._open()
            except OSError:
                pass
        return 0

    def __dealloc__(self):
        if self.fd >= 0:
            close(self.fd)

    def open_relative(self, bytes rel):
        """A descriptor of rel under this root (confined as for files), for
        directory listings; raises OSError."""
        cdef int fd = fc_open_beneath(self.fd, rel if rel else b".", self.real, self.beneath)
        if fd < 0:
            raise OSError(errno, "open")
        return fd


cdef class CachedFile:

    def __cinit__(self):
        self.fd = -1

    def __dealloc__(self):
        if self.fd >= 0:
            close(self.fd)


cdef bytes variant_suffix(unsigned encoding):
    if encoding == FC_ENC_GZIP:
        return b".gz"
    if encoding == FC_ENC_BR:
        return b".br"
    return b""


cdef class FileCache:

    def __init__(self, config):
        self.entries = {}
        self.max_entries = config.static_cache_entries
        self.max_bytes = config.static_cache_bytes
        self.max_fds = config.static_cache_fds
        self.inline_max = config.static_inline_max
        self.revalidate = config.static_revalidate
        self.etag_inode = config.etag_inode

    cdef CachedFile lookup(self, Root root, bytes rel, unsigned encoding, bint want_siblings, double now):
        """The entry of `rel` (a normalised path relative to root, no leading
        '/'), or of its precompressed variant; None with `error` set when
        there is no regular file to serve."""
        cdef bytes suffix = variant_suffix(encoding)
        cdef bytes key = root.tag + rel + (b"\0" + suffix if encoding else b"")
        cdef CachedFile entry = self.entries.get(key)
        cdef bytes path
        if entry is not None:
            if now - entry.checked < self.revalidate:
                self.hits += 1
                self._touch(entry)
                return entry
            path = rel + suffix
            if self._unchanged(entry, root, path):
                entry.checked = now
                if want_siblings:
                    self._check_siblings(entry, root, rel)
                self.hits += 1
                self._touch(entry)
                return entry
            self._remove(entry)
        self.misses += 1
        entry = self._open(root, rel + suffix, key, now)
        if entry is None:
            return None
        entry.encoding = encoding
        if want_siblings:
            self._check_siblings(entry, root, rel)
        self._insert(entry)
        return entry

    cdef int _check_siblings(self, CachedFile entry, Root root, bytes rel) except -1:
        """Which precompressed variants exist next to the file (a hint: the
        variant itself is opened with the same confinement when served)."""
        cdef struct_stat st
        cdef unsigned found = 0
        cdef bytes gz = rel + b".gz"
        cdef bytes br = rel + b".br"
        if fc_stat_beneath(root.fd, gz, root.real, root.beneath, &st) == 0 and S_ISREG(st.st_mode):
            found |= FC_ENC_GZIP
        if fc_stat_beneath(root.fd, br, root.real, root.beneath, &st) == 0 and S_ISREG(st.st_mode):
            found |= FC_ENC_BR
        if found != entry.siblings:
            entry.siblings = found
            entry.heads = None  # Vary changes
        return 0

    cdef bint _unchanged(self, CachedFile entry, Root root, bytes path) noexcept:
        cdef struct_stat st
        if fc_stat_beneath(root.fd, PyBytes_AS_STRING(path), PyBytes_AS_STRING(root.real), root.beneath, &st) != 0:
            return False
        return (S_ISREG(st.st_mode) and st.st_ino == entry.ino and st.st_dev == entry.dev and
                <uint64_t>st.st_size == entry.size and
                st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec == entry.mtime_ns)

    cdef CachedFile _open(self, Root root, bytes path, bytes key, double now):
        cdef struct_stat st
        cdef int fd = fc_open_beneath(root.fd, PyBytes_AS_STRING(path), PyBytes_AS_STRING(root.real),
                                      root.beneath)
        cdef CachedFile entry
        cdef char date[FC_HTTP_DATE_LEN + 1]
        cdef char tag[80]
        cdef int n
        cdef ssize_t got
        cdef size_t done
        cdef char *out
        if fd < 0:
            self.error = errno
            return None
        if fc_fstat(fd, &st) != 0:
            self.error = errno
            close(fd)
            return None
        if not S_ISREG(st.st_mode):
            self.error = EISDIR if S_ISDIR(st.st_mode) else EACCES
            close(fd)
            return None
        entry = CachedFile.__new__(CachedFile)
        entry.key = key
        entry.size = st.st_size
        entry.ino = st.st_ino
        entry.dev = st.st_dev
        entry.mtime = st.st_mtim.tv_sec
        entry.mtime_ns = st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec
        entry.checked = now
        if self.etag_inode:
            n = snprintf(tag, sizeof(tag), "\"%llx-%llx-%llx\"", <unsigned long long>entry.size,
                         <unsigned long long>entry.mtime_ns, <unsigned long long>entry.ino)
        else:
            n = snprintf(tag, sizeof(tag), "\"%llx-%llx\"", <unsigned long long>entry.size,
                         <unsigned long long>entry.mtime_ns)
        entry.etag = PyBytes_FromStringAndSize(tag, n)
        fc_http_date_format(entry.mtime, date)
        entry.last_modified = PyBytes_FromStringAndSize(date, FC_HTTP_DATE_LEN)
        if entry.size <= self.inline_max and entry.size <= self.max_bytes:
            # small: read once, serve from memory, keep no descriptor
            content = PyBytes_FromStringAndSize(NULL, entry.size)
            out = PyBytes_AS_STRING(content)
            done = 0
            while done < entry.size:
                got = pread(fd, out + done, entry.size - done, done)
                if got < 0 and errno == EINTR:
                    continue
                if got <= 0:  # shrank while read: treat as changing, serve nothing stale
                    self.error = EAGAIN if got == 0 else errno
                    close(fd)
                    return None
                done += got
            close(fd)
            entry.content = content
        else:
            entry.fd = fd
        return entry

    cdef int _insert(self, CachedFile entry) except -1:
        cdef CachedFile victim
        self.entries[entry.key] = entry
        self.count += 1
        if entry.content is not None:
            self.content_bytes += entry.size
        else:
            self.descriptors += 1
        self._link_newest(entry)
        victim = self.oldest
        while victim is not None and victim is not entry and (
                self.count > self.max_entries or self.content_bytes > self.max_bytes or
                self.descriptors > self.max_fds):
            # the oldest entry that holds what is over its bound
            if (self.count > self.max_entries or
                    (self.content_bytes > self.max_bytes and victim.content is not None) or
                    (self.descriptors > self.max_fds and victim.fd >= 0)):
                evicted = victim
                victim = victim.prev
                self._remove(evicted)
            else:
                victim = victim.prev
        return 0

    cdef int _remove(self, CachedFile entry) except -1:
        if not entry.linked:
            return 0
        del self.entries[entry.key]
        self.count -= 1
        if entry.content is not None:
            self.content_bytes -= entry.size
        else:
            self.descriptors -= 1
        self._unlink(entry)
        return 0

    cdef void _unlink(self, CachedFile entry) noexcept:
        if entry.prev is not None:
            entry.prev.next = entry.next
        else:
            self.newest = entry.next
        if entry.next is not None:
            entry.next.prev = entry.prev
        else:
            self.oldest = entry.prev
        entry.prev = None
        entry.next = None
        entry.linked = False

    cdef void _touch(self, CachedFile entry) noexcept:
        if self.newest is entry:
            return
        self._unlink(entry)
        self._link_newest(entry)

    cdef void _link_newest(self, CachedFile entry) noexcept:
        """Puts an unlinked entry at the most recently used end."""
        entry.linked = True
        entry.prev = None
        entry.next = self.newest
        if self.newest is not None:
            self.newest.prev = entry
        self.newest = entry
        if self.oldest is None:
            self.oldest = entry

    def find(self, Root root, bytes rel, double now, unsigned encoding=0):
        """lookup() for Python callers (tests, tools): (size, etag, in
        memory) of the entry, or None (then `error` says why)."""
        cdef CachedFile entry = self.lookup(root, rel, encoding, True, now)
        if entry is None:
            return None
        return entry.size, entry.etag, entry.content is not None

    def stats(self):
        """{entries, content_bytes, descriptors, hits, misses}, for tests and /status."""
        return {"entries": self.count, "content_bytes": self.content_bytes, "descriptors": self.descriptors,
                "hits": self.hits, "misses": self.misses}

    def clear(self):
        while self.oldest is not None:
            self._remove(self.oldest)
