# Interface of fastcore._core.static: the static-file location handler.
# One Location per configured prefix; all of a worker's locations share one
# FileCache. A Location answers the whole request in on_head (the path and
# header spans are valid there) and hands the connection back in on_end.
from fastcore._core.connection cimport Connection, RequestHandler
from fastcore._core.filecache cimport CachedFile, FileCache, Root
from fastcore._core.router cimport Router
from fastcore._core.parser cimport RequestParser
from fastcore._core.includes.fc_static cimport fc_range_t
from libc.stdint cimport uint64_t


cdef class Location(RequestHandler):
    cdef Router router
    cdef FileCache cache
    cdef readonly Root root
    cdef bytes index
    cdef bint autoindex
    cdef bint dotfiles
    cdef bint precompressed
    cdef bint server_header
    cdef bytes cache_control     # b"Cache-Control: ...\r\n" or b""
    cdef bytes server_line       # b"Server: fastcore\r\n" or b""
    cdef int max_ranges
    cdef Py_ssize_t listing_max  # autoindex_max_entries
    cdef str prefix
    cdef bytes boundary          # multipart/byteranges boundary of this worker
    cdef bint kept               # the keep-alive decision of the response being made
    cdef size_t queued_before    # conn.out.pending when on_head began (stats count head + body)
    cdef public object access_log
    cdef public object new_request_id

    cdef int respond(self, Connection conn, int status, Py_ssize_t body_bytes, double began) except -1
    cdef int serve_file(self, Connection conn, bytes rel, CachedFile entry, bint is_head, bytes end,
                        double began) except -1
    cdef tuple heads(self, CachedFile entry, bytes rel, bint vary)
    cdef int simple(self, Connection conn, int status, bint is_head, bytes end, double began,
                    bytes extra=*) except -1
    cdef int redirect(self, Connection conn, bint is_head, bytes end, double began) except -1
    cdef int listing(self, Connection conn, bytes rel, bint is_head, bytes end, double began) except -1
    cdef int finish_early(self, Connection conn, bint has_body) except -1
    cdef int lookup_failed(self, Connection conn, bytes rel, bint is_head, bytes end, double began) except -1
    cdef bint ranges_reasonable(self, fc_range_t *ranges, int n, uint64_t size) noexcept
    cdef bint if_range_holds(self, RequestParser p, int index, CachedFile entry) noexcept
    cdef int not_modified(self, Connection conn, tuple heads, bytes end, double began) except -1
    cdef int send_body(self, Connection conn, CachedFile entry, uint64_t offset, uint64_t count) except -1
    cdef int multipart(self, Connection conn, CachedFile entry, tuple heads, fc_range_t *ranges, int n,
                       bytes end, double began) except -1
