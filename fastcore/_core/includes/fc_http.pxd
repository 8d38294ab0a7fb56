# Declarations of src_c/fc_http.h, mirrored one to one. Contracts (who owns
# the memory, what each return means) are in the header's comments: spans
# point into the caller's buffer and are valid while it is neither freed
# nor moved; the caller owns the header array.
from libc.stdint cimport uint64_t


cdef extern from "fc_http.h" nogil:
    int FC_HTTP_INVALID
    int FC_HTTP_PARTIAL

    ctypedef struct fc_span_t:
        const char *at
        size_t len

    ctypedef struct fc_header_t:
        fc_span_t name
        fc_span_t value

    ctypedef enum fc_http_error_t:
        FC_OK
        FC_ERR_METHOD
        FC_ERR_TARGET
        FC_ERR_REQUEST_LINE
        FC_ERR_VERSION
        FC_ERR_VERSION_UNSUPPORTED
        FC_ERR_LINE_TOO_LONG
        FC_ERR_HEADER_NAME
        FC_ERR_HEADER_SPACE
        FC_ERR_HEADER_VALUE
        FC_ERR_OBS_FOLD
        FC_ERR_BARE_CR
        FC_ERR_BARE_LF
        FC_ERR_TOO_MANY_HEADERS
        FC_ERR_HEAD_TOO_LARGE
        FC_ERR_STATUS
        FC_ERR_CHUNK_SIZE
        FC_ERR_CHUNK_EXT
        FC_ERR_CHUNK_CRLF
        FC_ERR_CONTENT_LENGTH
        FC_ERR_CL_AND_TE
        FC_ERR_TE_UNSUPPORTED
        FC_ERR_TE_BAD
        FC_ERR_HOST
        FC_ERR_HOST_VALUE
        FC_ERR_TARGET_FORM
        FC_ERR_TARGET_AUTHORITY
        FC_ERR_TARGET_FRAGMENT
        FC_ERR_BODY_TOO_LARGE

    ctypedef struct fc_http_limits_t:
        size_t max_request_line
        size_t max_header_bytes

    ctypedef struct fc_request_head_t:
        fc_span_t method
        fc_span_t target
        int minor_version
        fc_header_t *headers
        size_t num_headers
        fc_http_error_t error

    ctypedef struct fc_response_head_t:
        int minor_version
        int status
        fc_span_t reason
        fc_header_t *headers
        size_t num_headers
        fc_http_error_t error

    enum:
        FC_REQ_KEEP_ALIVE
        FC_REQ_CHUNKED
        FC_REQ_EXPECT_CONTINUE
        FC_REQ_UPGRADE
        FC_REQ_CONNECTION_NAMES
        FC_REQ_HAS_LENGTH

    ctypedef enum fc_target_form_t:
        FC_TARGET_ORIGIN
        FC_TARGET_ABSOLUTE
        FC_TARGET_AUTHORITY
        FC_TARGET_ASTERISK

    ctypedef struct fc_request_info_t:
        unsigned flags
        uint64_t content_length
        int host_index
        int upgrade_index
        fc_target_form_t target_form
        fc_span_t path
        fc_span_t query
        fc_http_error_t error

    enum:
        FC_RESP_KEEP_ALIVE
        FC_RESP_CHUNKED
        FC_RESP_HAS_LENGTH
        FC_RESP_NO_BODY
        FC_RESP_UNTIL_CLOSE
        FC_RESP_CONNECTION_NAMES

    ctypedef struct fc_response_info_t:
        unsigned flags
        uint64_t content_length
        fc_http_error_t error

    int fc_http_parse_request(const char *buf, size_t len, size_t last_len,
                              const fc_http_limits_t *limits, fc_request_head_t *req)
    int fc_http_parse_response(const char *buf, size_t len, size_t last_len,
                               const fc_http_limits_t *limits, fc_response_head_t *resp)
    int fc_http_parse_fields(const char *buf, size_t len, size_t max_bytes,
                             fc_header_t *headers, size_t *num_headers,
                             fc_http_error_t *error)
    int fc_http_request_info(const fc_request_head_t *req, fc_request_info_t *info)
    int fc_http_response_info(const fc_response_head_t *resp, int request_was_head,
                              fc_response_info_t *info)
    int fc_http_parse_chunk_size(const char *buf, size_t len, size_t max_line,
                                 uint64_t *size, fc_http_error_t *error)
    int fc_ascii_only(const char *p, size_t n)
    int fc_http_error_status(fc_http_error_t error)
    const char *fc_http_error_text(fc_http_error_t error)

    ctypedef enum fc_simd_level_t:
        FC_SIMD_SCALAR
        FC_SIMD_SSE2
        FC_SIMD_AVX2
    fc_simd_level_t fc_http_simd()
    fc_simd_level_t fc_http_set_simd(fc_simd_level_t level)
