# Declarations of src_c/fc_static.h, mirrored one to one; the contracts are
# in the header's comments. Nothing here allocates or makes system calls.
from libc.stdint cimport int64_t, uint64_t


cdef extern from "fc_static.h" nogil:
    ctypedef enum fc_path_error_t:
        FC_PATH_OK
        FC_PATH_BAD_ESCAPE
        FC_PATH_NUL
        FC_PATH_ENCODED_SLASH
        FC_PATH_BACKSLASH
        FC_PATH_BAD_UTF8
        FC_PATH_ESCAPES_ROOT
        FC_PATH_NOT_ABSOLUTE
        FC_PATH_CONTROL

    long fc_path_normalize(const char *path, size_t len, char *out)
    int fc_path_has_dotfile(const char *path, size_t len)

    enum:
        FC_HTTP_DATE_LEN
    int fc_http_date_parse(const char *s, size_t len, int64_t *out)
    int fc_http_date_format(int64_t t, char *out)

    ctypedef struct fc_range_t:
        uint64_t first
        uint64_t last
    enum:
        FC_RANGE_IGNORE
    int fc_range_parse(const char *s, size_t len, uint64_t size, fc_range_t *ranges, int max)

    int fc_etag_match(const char *field, size_t len, const char *etag, size_t etag_len, int weak)

    enum:
        FC_ENC_GZIP
        FC_ENC_BR
    unsigned fc_accept_encoding(const char *field, size_t len)
