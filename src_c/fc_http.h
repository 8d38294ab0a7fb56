/* fc_http: HTTP/1.1 message-head parser core (RFC 9112), plain C, no allocation.
 *
 * Contract of every fc_http_parse_* function:
 *   returns the number of bytes consumed (> 0) when a complete element was
 *   parsed, FC_HTTP_PARTIAL (-2) when more bytes are needed, FC_HTTP_INVALID
 *   (-1) when the input is bad, with the reason in the output's `error`.
 *
 * Outputs are spans (pointer + length) into the caller's buffer: they are
 * valid as long as that buffer is neither freed nor moved. The caller owns
 * the header array and passes its capacity in `num_headers`.
 *
 * The parser is strict where leniency enables request smuggling: CRLF line
 * endings only, single SP in the request line, tokens for method and field
 * names, no whitespace before a colon, no obs-fold, no CTL in field values.
 * A request's Content-Length is one decimal per field: the list form that
 * RFC 9110 8.6 lets a recipient either refuse or collapse ("5, 5") is
 * refused with 400, so what reaches an application is always one number
 * (identical repeated fields are accepted: each is one decimal).
 */
#ifndef FC_HTTP_H
#define FC_HTTP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FC_HTTP_INVALID (-1)
#define FC_HTTP_PARTIAL (-2)

typedef struct {
    const char *at;
    size_t len;
} fc_span_t;

typedef struct {
    fc_span_t name;
    fc_span_t value;
} fc_header_t;

/* Why a message was refused. fc_http_error_status() maps each to the HTTP
 * status a server answers; fc_http_error_text() to a one-line reason. */
typedef enum {
    FC_OK = 0,
    FC_ERR_METHOD,             /* 400 empty method or non-token character */
    FC_ERR_TARGET,             /* 400 empty target or a byte outside 0x21-0x7e */
    FC_ERR_REQUEST_LINE,       /* 400 spacing or line ending of the request line */
    FC_ERR_VERSION,            /* 400 malformed HTTP-version */
    FC_ERR_VERSION_UNSUPPORTED,/* 505 well-formed but not HTTP/1.0 or HTTP/1.1 */
    FC_ERR_LINE_TOO_LONG,      /* 414 request line over the limit */
    FC_ERR_HEADER_NAME,        /* 400 empty field name or non-token character */
    FC_ERR_HEADER_SPACE,       /* 400 whitespace between field name and colon */
    FC_ERR_HEADER_VALUE,       /* 400 NUL, CTL or DEL in a field value */
    FC_ERR_OBS_FOLD,           /* 400 line folding (obsolete, RFC 9112 5.2) */
    FC_ERR_BARE_CR,            /* 400 CR not followed by LF */
    FC_ERR_BARE_LF,            /* 400 LF not preceded by CR */
    FC_ERR_TOO_MANY_HEADERS,   /* 431 more fields than the limit */
    FC_ERR_HEAD_TOO_LARGE,     /* 431 header section over the size limit */
    FC_ERR_STATUS,             /* 502 (proxy) malformed status line */
    FC_ERR_CHUNK_SIZE,         /* 400 chunk size not hex, empty or overflowing */
    FC_ERR_CHUNK_EXT,          /* 400 bad chunk extension or chunk line too long */
    FC_ERR_CHUNK_CRLF,         /* 400 chunk data not followed by CRLF */
    FC_ERR_CONTENT_LENGTH,     /* 400 Content-Length not 1*DIGIT (a list "5, 5" too), or differing */
    FC_ERR_CL_AND_TE,          /* 400 both Content-Length and Transfer-Encoding */
    FC_ERR_TE_UNSUPPORTED,     /* 501 a transfer coding other than chunked */
    FC_ERR_TE_BAD,             /* 400 malformed Transfer-Encoding, or in HTTP/1.0 */
    FC_ERR_HOST,               /* 400 HTTP/1.1 without exactly one Host */
    FC_ERR_HOST_VALUE,         /* 400 Host not uri-host [":" port] (RFC 3986; no ',', port <= 65535) */
    FC_ERR_TARGET_FORM,        /* 400 target form not allowed for the method */
    FC_ERR_TARGET_AUTHORITY,   /* 400 authority of a CONNECT or absolute-form target fails Host's grammar */
    FC_ERR_TARGET_FRAGMENT,    /* 400 '#' in the target: no form has a fragment (RFC 9112 3.2) */
    FC_ERR_BODY_TOO_LARGE,     /* 413 body over the limit */
    FC_ERR__COUNT
} fc_http_error_t;

typedef struct {
    size_t max_request_line;  /* bytes of the request line incl. CRLF; 414 above */
    size_t max_header_bytes;  /* bytes of the whole head incl. request line; 431 above */
} fc_http_limits_t;

typedef struct {
    fc_span_t method;
    fc_span_t target;
    int minor_version;        /* 0 or 1 */
    fc_header_t *headers;     /* caller's array */
    size_t num_headers;       /* in: capacity of headers; out: fields parsed */
    fc_http_error_t error;
} fc_request_head_t;

typedef struct {
    int minor_version;
    int status;               /* 100..999 */
    fc_span_t reason;
    fc_header_t *headers;
    size_t num_headers;
    fc_http_error_t error;
} fc_response_head_t;

/* Framing facts a server needs from a request head (RFC 9112 6, 9.3). */
enum {
    FC_REQ_KEEP_ALIVE = 1 << 0,
    FC_REQ_CHUNKED = 1 << 1,
    FC_REQ_EXPECT_CONTINUE = 1 << 2,
    FC_REQ_UPGRADE = 1 << 3,       /* Connection: upgrade and an Upgrade field */
    FC_REQ_HAS_LENGTH = 1 << 4,    /* a Content-Length was given */
    FC_REQ_CONNECTION_NAMES = 1 << 5, /* Connection lists an option other than close, keep-alive and
                                         upgrade: a field it names is hop-by-hop (RFC 9110 7.6.1) */
};

typedef enum {
    FC_TARGET_ORIGIN = 0,     /* /path?query */
    FC_TARGET_ABSOLUTE,       /* http://host/path?query */
    FC_TARGET_AUTHORITY,      /* host:port, CONNECT only */
    FC_TARGET_ASTERISK,       /* *, OPTIONS only */
} fc_target_form_t;

typedef struct {
    unsigned flags;           /* FC_REQ_* */
    uint64_t content_length;  /* valid when FC_REQ_HAS_LENGTH */
    int host_index;           /* index of the Host field, -1 if none */
    int upgrade_index;        /* index of the Upgrade field, -1 if none */
    fc_target_form_t target_form;
    fc_span_t path;           /* raw path (not percent-decoded) */
    fc_span_t query;          /* after the first '?', empty if none */
    fc_http_error_t error;
} fc_request_info_t;

/* Parses a request head. `last_len` is the length of buf at the previous
 * call that returned PARTIAL for this same head (0 the first time): when it
 * is non-zero, the bytes already seen are parsed again only once a new line
 * has completed, which keeps a byte-at-a-time client from costing
 * quadratic time. Limits are checked on partial input too. */
int fc_http_parse_request(const char *buf, size_t len, size_t last_len,
                          const fc_http_limits_t *limits, fc_request_head_t *req);

/* Parses a response head (status line and fields) with the same contract. */
int fc_http_parse_response(const char *buf, size_t len, size_t last_len,
                           const fc_http_limits_t *limits, fc_response_head_t *resp);

/* Parses header fields up to and including the blank line (a trailer
 * section); max_bytes bounds the section. Returns consumed/PARTIAL/INVALID. */
int fc_http_parse_fields(const char *buf, size_t len, size_t max_bytes,
                         fc_header_t *headers, size_t *num_headers,
                         fc_http_error_t *error);

/* Derives framing from a parsed request head: body length or chunked,
 * keep-alive, Expect, Upgrade, Host, target form, path and query.
 * Returns 0, or -1 with info->error set. */
int fc_http_request_info(const fc_request_head_t *req, fc_request_info_t *info);

/* Framing facts from a parsed response head (RFC 9112 6.3). */
enum {
    FC_RESP_KEEP_ALIVE = 1 << 0,
    FC_RESP_CHUNKED = 1 << 1,
    FC_RESP_HAS_LENGTH = 1 << 2,
    FC_RESP_NO_BODY = 1 << 3,      /* 1xx, 204, 304, or a response to HEAD */
    FC_RESP_UNTIL_CLOSE = 1 << 4,  /* body delimited by the connection closing */
    FC_RESP_CONNECTION_NAMES = 1 << 5, /* as FC_REQ_CONNECTION_NAMES */
};

typedef struct {
    unsigned flags;
    uint64_t content_length;
    fc_http_error_t error;
} fc_response_info_t;

/* Derives the body framing of a response; request_was_head is non-zero
 * when it answers a HEAD. Returns 0, or -1 with info->error set. */
int fc_http_response_info(const fc_response_head_t *resp, int request_was_head,
                          fc_response_info_t *info);

/* Parses a chunk-size line: 1*HEXDIG [chunk-ext] CRLF. On success *size is
 * the chunk size and the return value the bytes consumed; max_line bounds
 * the whole line. Extensions are validated and skipped. */
int fc_http_parse_chunk_size(const char *buf, size_t len, size_t max_line,
                             uint64_t *size, fc_http_error_t *error);

/* Non-zero when no byte of [p, p + n) is >= 0x80: the caller may then make
 * ASCII strings without scanning each one again. */
int fc_ascii_only(const char *p, size_t n);

int fc_http_error_status(fc_http_error_t error);
const char *fc_http_error_text(fc_http_error_t error);

/* SIMD level used by the scanners: chosen at first use from the CPU's
 * features; settable for tests and benchmarks that compare the paths.
 * fc_http_set_simd returns the level in force (it refuses levels the CPU
 * lacks and keeps the current one). */
typedef enum { FC_SIMD_SCALAR = 0, FC_SIMD_SSE2 = 1, FC_SIMD_AVX2 = 2 } fc_simd_level_t;
fc_simd_level_t fc_http_simd(void);
fc_simd_level_t fc_http_set_simd(fc_simd_level_t level);

#ifdef __cplusplus
}
#endif
#endif /* FC_HTTP_H */
