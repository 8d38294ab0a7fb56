# Interface of fastcore._core.router: picks the handler of each request by
# the longest location prefix of its normalised path. The normalised path
# lives in the router's buffer: valid during the chosen handler's on_head
# only (like the parser's header spans), which is where handlers read it.
from fastcore._core.connection cimport Connection, RequestHandler


cdef class Router(RequestHandler):
    cdef list prefixes           # bytes, no trailing '/' ("/" is b""), longest first
    cdef list handlers           # RequestHandler, same order
    cdef RequestHandler fallback # requests under no prefix (the application), or None: 404
    cdef char *path              # the normalised path of the request being routed
    cdef size_t path_len
    cdef size_t match_len        # length of the matched prefix within path
    cdef size_t capacity
    cdef readonly int path_error # fc_path_error_t of the last refused path, 0 if none

    cdef RequestHandler match(self, const char *at, size_t n)


cdef class HttpsRedirect(RequestHandler):
    cdef bytes port_suffix       # b":8443", or b"" for 443
