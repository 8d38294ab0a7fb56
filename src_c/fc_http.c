/* fc_http.c: request/response head parser, framing facts, chunk sizes.
 * Contracts are in fc_http.h; the per-SIMD-level parser body is in
 * fc_http_impl.h, included below once per level. */
#include "fc_http.h"
#include "fc_text.h"

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define FC_X86 1
#include <immintrin.h>
#endif

/* tchar (RFC 9110 5.6.2): "!#$%&'*+-.^_`|~" DIGIT ALPHA */
static const unsigned char fc_tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1,
    ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

static inline int fc_is_digit(char c) { return c >= '0' && c <= '9'; }

/* request-target bytes: VCHAR (0x21-0x7e) but '#' (a fragment, never sent) */
static inline int fc_target_ok(unsigned char c) { return (unsigned char)(c - 0x21) < 0x5e && c != '#'; }

/* field-value bytes (RFC 9110 5.5): VCHAR, obs-text, SP, HTAB */
static inline int fc_value_ok(unsigned char c) { return c >= 0x20 ? c != 0x7f : c == '\t'; }

static inline const char *scan_target_scalar(const char *p, const char *end)
{
    while (end - p >= 4) {
        if (!fc_target_ok((unsigned char)p[0])) return p;
        if (!fc_target_ok((unsigned char)p[1])) return p + 1;
        if (!fc_target_ok((unsigned char)p[2])) return p + 2;
        if (!fc_target_ok((unsigned char)p[3])) return p + 3;
        p += 4;
    }
    while (p < end && fc_target_ok((unsigned char)*p))
        ++p;
    return p;
}

static inline const char *scan_token_scalar(const char *p, const char *end)
{
    while (end - p >= 4) {
        if (!fc_tchar[(unsigned char)p[0]]) return p;
        if (!fc_tchar[(unsigned char)p[1]]) return p + 1;
        if (!fc_tchar[(unsigned char)p[2]]) return p + 2;
        if (!fc_tchar[(unsigned char)p[3]]) return p + 3;
        p += 4;
    }
    while (p < end && fc_tchar[(unsigned char)*p])
        ++p;
    return p;
}

static inline const char *scan_value_scalar(const char *p, const char *end)
{
    while (end - p >= 4) {
        if (!fc_value_ok((unsigned char)p[0])) return p;
        if (!fc_value_ok((unsigned char)p[1])) return p + 1;
        if (!fc_value_ok((unsigned char)p[2])) return p + 2;
        if (!fc_value_ok((unsigned char)p[3])) return p + 3;
        p += 4;
    }
    while (p < end && fc_value_ok((unsigned char)*p))
        ++p;
    return p;
}

#define FC_NAME(n) n##_scalar
#define FC_ATTR
#define FC_SCAN_TARGET scan_target_scalar
#define FC_SCAN_VALUE scan_value_scalar
#define FC_SCAN_TOKEN scan_token_scalar
#include "fc_http_impl.h"
#undef FC_NAME
#undef FC_ATTR
#undef FC_SCAN_TARGET
#undef FC_SCAN_VALUE
#undef FC_SCAN_TOKEN

#ifdef FC_X86
/* Vector scanners. Field names stay scalar at every level: they are short
 * (10 bytes on average) and a nibble-lookup (pshufb) token classifier was
 * measured slower than the table loop (130 vs 106 ns per realistic request).
 * Unsigned range tests with min/max: x <= k exactly when
 * min(x, k) == x; x >= k exactly when max(x, k) == x. */

#define FC_SSE2 __attribute__((target("sse2")))
#define FC_AVX2 __attribute__((target("avx2")))

FC_SSE2 static inline const char *scan_target_sse2(const char *p, const char *end)
{
    const __m128i lo = _mm_set1_epi8(0x20), hi = _mm_set1_epi8(0x7f), hash = _mm_set1_epi8('#');
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        __m128i bad = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(v, lo), v),
                                                _mm_cmpeq_epi8(_mm_max_epu8(v, hi), v)),
                                   _mm_cmpeq_epi8(v, hash));
        unsigned mask = (unsigned)_mm_movemask_epi8(bad);
        if (mask)
            return p + __builtin_ctz(mask);
        p += 16;
    }
    return scan_target_scalar(p, end);
}

FC_SSE2 static inline const char *scan_value_sse2(const char *p, const char *end)
{
    const __m128i ctl = _mm_set1_epi8(0x1f), tab = _mm_set1_epi8('\t'), del = _mm_set1_epi8(0x7f);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        __m128i is_ctl = _mm_cmpeq_epi8(_mm_min_epu8(v, ctl), v);
        __m128i bad = _mm_or_si128(_mm_andnot_si128(_mm_cmpeq_epi8(v, tab), is_ctl),
                                   _mm_cmpeq_epi8(v, del));
        unsigned mask = (unsigned)_mm_movemask_epi8(bad);
        if (mask)
            return p + __builtin_ctz(mask);
        p += 16;
    }
    return scan_value_scalar(p, end);
}

FC_AVX2 static inline const char *scan_target_avx2(const char *p, const char *end)
{
    const __m256i lo = _mm256_set1_epi8(0x20), hi = _mm256_set1_epi8(0x7f), hash = _mm256_set1_epi8('#');
    while (end - p >= 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)p);
        __m256i bad = _mm256_or_si256(_mm256_or_si256(_mm256_cmpeq_epi8(_mm256_min_epu8(v, lo), v),
                                                      _mm256_cmpeq_epi8(_mm256_max_epu8(v, hi), v)),
                                      _mm256_cmpeq_epi8(v, hash));
        unsigned mask = (unsigned)_mm256_movemask_epi8(bad);
        if (mask)
            return p + __builtin_ctz(mask);
        p += 32;
    }
    return scan_target_sse2(p, end);
}

FC_AVX2 static inline const char *scan_value_avx2(const char *p, const char *end)
{
    const __m256i ctl = _mm256_set1_epi8(0x1f), tab = _mm256_set1_epi8('\t'), del = _mm256_set1_epi8(0x7f);
    while (end - p >= 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)p);
        __m256i is_ctl = _mm256_cmpeq_epi8(_mm256_min_epu8(v, ctl), v);
        __m256i bad = _mm256_or_si256(_mm256_andnot_si256(_mm256_cmpeq_epi8(v, tab), is_ctl),
                                      _mm256_cmpeq_epi8(v, del));
        unsigned mask = (unsigned)_mm256_movemask_epi8(bad);
        if (mask)
            return p + __builtin_ctz(mask);
        p += 32;
    }
    return scan_value_sse2(p, end);
}

#define FC_NAME(n) n##_sse2
#define FC_ATTR FC_SSE2
#define FC_SCAN_TARGET scan_target_sse2
#define FC_SCAN_VALUE scan_value_sse2
#define FC_SCAN_TOKEN scan_token_scalar
#include "fc_http_impl.h"
#undef FC_NAME
#undef FC_ATTR
#undef FC_SCAN_TARGET
#undef FC_SCAN_VALUE
#undef FC_SCAN_TOKEN

#define FC_NAME(n) n##_avx2
#define FC_ATTR FC_AVX2
#define FC_SCAN_TARGET scan_target_avx2
#define FC_SCAN_VALUE scan_value_avx2
#define FC_SCAN_TOKEN scan_token_scalar
#include "fc_http_impl.h"
#undef FC_NAME
#undef FC_ATTR
#undef FC_SCAN_TARGET
#undef FC_SCAN_VALUE
#undef FC_SCAN_TOKEN
#endif /* FC_X86 */

/* ---- SIMD level -------------------------------------------------------- */

static int fc_simd_level = -1;

static fc_simd_level_t fc_simd_supported(void)
{
#ifdef FC_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2"))
        return FC_SIMD_AVX2;
    if (__builtin_cpu_supports("sse2"))
        return FC_SIMD_SSE2;
#endif
    return FC_SIMD_SCALAR;
}

fc_simd_level_t fc_http_simd(void)
{
    if (fc_simd_level < 0)
        fc_simd_level = (int)fc_simd_supported();
    return (fc_simd_level_t)fc_simd_level;
}

fc_simd_level_t fc_http_set_simd(fc_simd_level_t level)
{
    if (level >= FC_SIMD_SCALAR && level <= fc_simd_supported())
        fc_simd_level = (int)level;
    return fc_http_simd();
}

/* ---- entry points ------------------------------------------------------ */

/* Cheap re-check of a head that was partial before: the limits, and
 * whether a line has completed since (a new LF). Only then can the head
 * have ended or a line have become decidably bad, so a client sending one
 * byte at a time costs one memchr per byte, not a re-parse. Returns
 * PARTIAL to wait, INVALID for a limit, 0 to go on with a full parse. */
static int fc_recheck_partial(const char *buf, size_t len, size_t last_len,
                              const fc_http_limits_t *limits, int is_request,
                              fc_http_error_t *error)
{
    if (len >= limits->max_header_bytes)
        return 0; /* the full parse reports the limit precisely */
    if (last_len < len && memchr(buf + last_len, '\n', len - last_len) != NULL)
        return 0;
    if (is_request && len >= limits->max_request_line) {
        size_t skip = 0;
        while (skip + 1 < len && buf[skip] == '\r' && buf[skip + 1] == '\n')
            skip += 2;
        if (len - skip >= limits->max_request_line &&
            memchr(buf + skip, '\n', limits->max_request_line) == NULL) {
            *error = FC_ERR_LINE_TOO_LONG;
            return FC_HTTP_INVALID;
        }
    }
    return FC_HTTP_PARTIAL;
}

int fc_http_parse_request(const char *buf, size_t len, size_t last_len,
                          const fc_http_limits_t *limits, fc_request_head_t *req)
{
    req->error = FC_OK;
    if (last_len != 0) {
        int rc = fc_recheck_partial(buf, len, last_len, limits, 1, &req->error);
        if (rc != 0)
            return rc;
    }
    switch (fc_http_simd()) {
#ifdef FC_X86
    case FC_SIMD_AVX2:
        return parse_request_avx2(buf, len, limits, req);
    case FC_SIMD_SSE2:
        return parse_request_sse2(buf, len, limits, req);
#endif
    default:
        return parse_request_scalar(buf, len, limits, req);
    }
}

int fc_http_parse_response(const char *buf, size_t len, size_t last_len,
                           const fc_http_limits_t *limits, fc_response_head_t *resp)
{
    resp->error = FC_OK;
    if (last_len != 0) {
        int rc = fc_recheck_partial(buf, len, last_len, limits, 0, &resp->error);
        if (rc != 0)
            return rc;
    }
    switch (fc_http_simd()) {
#ifdef FC_X86
    case FC_SIMD_AVX2:
        return parse_response_avx2(buf, len, limits, resp);
    case FC_SIMD_SSE2:
        return parse_response_sse2(buf, len, limits, resp);
#endif
    default:
        return parse_response_scalar(buf, len, limits, resp);
    }
}

int fc_http_parse_fields(const char *buf, size_t len, size_t max_bytes,
                         fc_header_t *headers, size_t *num_headers,
                         fc_http_error_t *error)
{
    const char *end = buf + len;
    const char *limit = len > max_bytes ? buf + max_bytes : end;
    const char *next;
    *error = FC_OK;
    int rc = parse_fields_scalar(buf, limit, headers, num_headers, &next, error);
    if (rc == 0)
        return (int)(next - buf);
    if (rc == FC_HTTP_PARTIAL && (limit < end || len >= max_bytes)) {
        *error = FC_ERR_HEAD_TOO_LARGE;
        return FC_HTTP_INVALID;
    }
    return rc;
}

/* ---- framing facts (RFC 9112 6.1-6.3, 9.3; RFC 9110 7.2, 10.1.1) -------- */


/* Calls back for each element of a comma-separated list (RFC 9110 5.6.1),
 * trimmed of OWS; empty elements are skipped. Stops when fn returns
 * non-zero and returns that. */
typedef int (*fc_list_fn)(const char *at, size_t len, void *ctx);

static int fc_each_list_item(fc_span_t value, fc_list_fn fn, void *ctx)
{
    const char *p = value.at, *end = value.at + value.len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *item_end = comma ? comma : end;
        const char *a = p, *b = item_end;
        while (a < b && (*a == ' ' || *a == '\t'))
            ++a;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            --b;
        if (b > a) {
            int rc = fn(a, (size_t)(b - a), ctx);
            if (rc)
                return rc;
        }
        p = comma ? comma + 1 : end;
    }
    return 0;
}

struct fc_length_ctx {
    int seen;
    uint64_t value;
};

static int fc_length_item(const char *at, size_t len, void *vctx)
{
    struct fc_length_ctx *ctx = vctx;
    uint64_t v = 0;
    if (len > 18) /* 10^18 bytes: anything longer is an attack or a typo */
        return 1;
    for (size_t i = 0; i < len; ++i) {
        if (!fc_is_digit(at[i]))
            return 1;
        v = v * 10 + (uint64_t)(at[i] - '0');
    }
    if (ctx->seen && ctx->value != v)
        return 1;
    ctx->seen = 1;
    ctx->value = v;
    return 0;
}

struct fc_coding_ctx {
    int chunked;
    int other;
};

static int fc_coding_item(const char *at, size_t len, void *vctx)
{
    struct fc_coding_ctx *ctx = vctx;
    size_t n = 0;
    while (n < len && fc_tchar[(unsigned char)at[n]])
        ++n;
    if (n == 0)
        return 1;
    if (n < len && at[n] != ';' && at[n] != ' ' && at[n] != '\t')
        return 1;
    if (fc_token_eq(at, n, FC_LIT("chunked"))) {
        if (ctx->chunked || n != len) /* twice, or with parameters */
            return 1;
        ctx->chunked = 1;
    } else {
        if (ctx->chunked) /* chunked must be the final coding */
            return 1;
        ctx->other = 1;
    }
    return 0;
}

/* FC_CONN_OTHER: an option that may name a field, which is then hop-by-hop */
enum { FC_CONN_CLOSE = 1, FC_CONN_KEEP_ALIVE = 2, FC_CONN_UPGRADE = 4, FC_CONN_OTHER = 8 };

static int fc_connection_item(const char *at, size_t len, void *vctx)
{
    unsigned *options = vctx;
    if (fc_token_eq(at, len, FC_LIT("close")))
        *options |= FC_CONN_CLOSE;
    else if (fc_token_eq(at, len, FC_LIT("keep-alive")))
        *options |= FC_CONN_KEEP_ALIVE;
    else if (fc_token_eq(at, len, FC_LIT("upgrade")))
        *options |= FC_CONN_UPGRADE;
    else
        *options |= FC_CONN_OTHER;
    return 0;
}

/* ---- authority (RFC 3986 3.2, as RFC 9110 7.2 and RFC 9112 3.2.3 use it) --
 *
 *   Host          = uri-host [ ":" port ]                  ; RFC 9110 7.2
 *   authority-form = uri-host ":" port                     ; RFC 9112 3.2.3
 *   uri-host      = IP-literal / IPv4address / reg-name    ; RFC 3986 3.2.2
 *   port          = *DIGIT                                 ; RFC 3986 3.2.3
 *   IP-literal    = "[" ( IPv6address / IPvFuture ) "]"
 *   IPvFuture     = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
 *   reg-name      = *( unreserved / pct-encoded / sub-delims )
 *   unreserved    = ALPHA / DIGIT / "-" / "." / "_" / "~"
 *   pct-encoded   = "%" HEXDIG HEXDIG
 *   sub-delims    = "!" / "$" / "&" / "'" / "(" / ")" / "*" / "+" / "," / ";" / "="
 *
 * IPv4address needs no check of its own outside brackets: every IPv4address
 * is also a reg-name (digits and dots), so it only matters inside IPv6.
 * Where we are stricter than the grammar, and why:
 * - a port is at most 65535 (RFC 3986 allows any digits; no TCP port is more);
 * - ',' is refused in a reg-name: a recipient may join repeated fields with
 *   commas (RFC 9110 5.3), so "a,b" cannot be told from two Host fields,
 *   which RFC 9112 3.2 answers with 400; no DNS name holds a comma;
 * - an empty host with a port (":80") is refused (RFC 9110 4.2.1); an empty
 *   Host value is allowed (RFC 9112 3.2: the target may have no authority);
 * - userinfo ("user@host") is not part of uri-host and so refused. */

/* unreserved / sub-delims without ',' (see above) */
static const unsigned char fc_regname[256] = {
    ['-'] = 1, ['.'] = 1, ['_'] = 1, ['~'] = 1,
    ['!'] = 1, ['$'] = 1, ['&'] = 1, ['\''] = 1, ['('] = 1, [')'] = 1, ['*'] = 1, ['+'] = 1,
    [';'] = 1, ['='] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

/* IPv4address = dec-octet "." dec-octet "." dec-octet "." dec-octet
 * dec-octet   = DIGIT / %x31-39 DIGIT / "1" 2DIGIT / "2" %x30-34 DIGIT / "25" %x30-35
 * (no leading zeros: "01" is not a dec-octet). The whole of [p, end). */
static int fc_ipv4_ok(const char *p, const char *end)
{
    for (int octet = 0; octet < 4; ++octet) {
        const char *start = p;
        unsigned v = 0;
        if (octet > 0) {
            if (p == end || *p != '.')
                return 0;
            start = ++p;
        }
        while (p < end && fc_is_digit(*p) && p - start < 3)
            v = v * 10 + (unsigned)(*p++ - '0');
        if (p == start || v > 255 || (p - start > 1 && *start == '0'))
            return 0;
    }
    return p == end;
}

/* IPv6address (RFC 3986 3.2.2): eight h16 groups (h16 = 1*4HEXDIG) joined by
 * ':', the last two of which may be an IPv4address, or fewer groups with
 * one "::" standing for at least one group. Its nine ABNF alternatives
 * come to exactly that count, which is what this checks. */
static int fc_ipv6_ok(const char *p, const char *end)
{
    int groups = 0, elided = 0;
    if (end - p >= 2 && p[0] == ':' && p[1] == ':') {
        elided = 1;
        p += 2;
        if (p == end)
            return 1;
    }
    for (;;) {
        const char *q = p;
        while (q < end && q - p < 5 && fc_hex_value(*q) >= 0)
            ++q;
        if (q < end && *q == '.') { /* ls32 as an IPv4address: the last thing */
            if (!fc_ipv4_ok(p, end))
                return 0;
            groups += 2;
            break;
        }
        if (q == p || q - p > 4)
            return 0;
        ++groups;
        p = q;
        if (p == end)
            break;
        if (*p != ':' || ++p == end)
            return 0;
        if (*p == ':') {
            if (elided)
                return 0;
            elided = 1;
            if (++p == end)
                break;
        }
    }
    return elided ? groups <= 7 : groups == 8;
}

/* IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ) */
static int fc_ipvfuture_ok(const char *p, const char *end)
{
    const char *hex;
    if (p == end || (*p | 0x20) != 'v')
        return 0;
    hex = ++p;
    while (p < end && fc_hex_value(*p) >= 0)
        ++p;
    if (p == hex || p == end || *p != '.' || ++p == end)
        return 0;
    for (; p < end; ++p)
        if (!fc_regname[(unsigned char)*p] && *p != ':' && *p != ',')
            return 0;
    return 1;
}

#if defined(FC_X86) && defined(__SSE2__)
/* The usual reg-name, 16 bytes at a time: letters, digits, '-' and '.'.
 * Returns the first byte that is none of them, or where fewer than 16
 * remain; the table loop after it decides the rest. The compares are
 * signed, so bytes >= 0x80 fall outside every range. SSE2 is part of
 * x86-64, so no dispatch. A Host value is checked on every request: this
 * halves what a 17-byte name costs (bench/cost, parser_c). */
static inline const char *fc_skip_hostname(const char *p, const char *end)
{
    const __m128i case_bit = _mm_set1_epi8(0x20);
    const __m128i before_a = _mm_set1_epi8('a' - 1), after_z = _mm_set1_epi8('z' + 1);
    const __m128i before_0 = _mm_set1_epi8('0' - 1), after_9 = _mm_set1_epi8('9' + 1);
    const __m128i dash = _mm_set1_epi8('-'), dot = _mm_set1_epi8('.');
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        __m128i folded = _mm_or_si128(v, case_bit); /* a letter folds onto a-z, nothing else does */
        __m128i letter = _mm_and_si128(_mm_cmpgt_epi8(folded, before_a), _mm_cmplt_epi8(folded, after_z));
        __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(v, before_0), _mm_cmplt_epi8(v, after_9));
        __m128i ok = _mm_or_si128(_mm_or_si128(letter, digit),
                                  _mm_or_si128(_mm_cmpeq_epi8(v, dash), _mm_cmpeq_epi8(v, dot)));
        unsigned bad = ~(unsigned)_mm_movemask_epi8(ok) & 0xffff;
        if (bad)
            return p + __builtin_ctz(bad);
        p += 16;
    }
    return p;
}
#else
static inline const char *fc_skip_hostname(const char *p, const char *end)
{
    (void)end;
    return p;
}
#endif

/* uri-host [ ":" port ] over the whole of [p, p + n); port_required for
 * authority-form. Non-zero when valid. Once per request: a table lookup
 * per byte of a reg-name, the common case. */
static inline __attribute__((always_inline)) int fc_authority_ok(const char *p, size_t n, int port_required)
{
    const char *end = p + n, *host = p;
    if (p < end && *p == '[') {
        const char *close = memchr(p, ']', n);
        if (close == NULL)
            return 0;
        int future = close - p > 1 && (p[1] | 0x20) == 'v';
        if (!(future ? fc_ipvfuture_ok(p + 1, close) : fc_ipv6_ok(p + 1, close)))
            return 0;
        p = close + 1;
    } else {
        /* reg-name: the usual bytes by vector, the others by table, then
         * pct-encoded */
        for (;;) {
            p = fc_skip_hostname(p, end);
            while (p < end && fc_regname[(unsigned char)*p])
                ++p;
            if (end - p >= 3 && *p == '%' && fc_hex_value(p[1]) >= 0 && fc_hex_value(p[2]) >= 0) {
                p += 3;
                continue;
            }
            break;
        }
        if (p == host && (p < end || port_required)) /* an empty host, with a port */
            return 0;
    }
    if (p == end)
        return !port_required;
    if (*p != ':')
        return 0;
    ++p;
    if (p == end)
        return !port_required; /* "host:" is the default port (RFC 3986 3.2.3) */
    unsigned port = 0;
    for (; p < end; ++p) {
        if (!fc_is_digit(*p))
            return 0;
        port = port * 10 + (unsigned)(*p - '0');
        if (port > 65535)
            return 0;
    }
    return 1;
}

static int fc_classify_target(const fc_request_head_t *req, fc_request_info_t *info)
{
    const char *t = req->target.at;
    size_t n = req->target.len;
    int is_connect = req->method.len == 7 && memcmp(req->method.at, "CONNECT", 7) == 0;
    const char *path = t, *end = t + n;

    info->query.at = end;
    info->query.len = 0;
    if (is_connect) {
        /* authority-form = uri-host ":" port (RFC 9112 3.2.3): the grammar
         * of Host with the port required, so IP literals pass like names */
        if (t[0] == '/' || memchr(t, ':', n) == NULL) {
            info->error = FC_ERR_TARGET_FORM;
            return -1;
        }
        if (!fc_authority_ok(t, n, 1)) {
            info->error = FC_ERR_TARGET_AUTHORITY;
            return -1;
        }
        info->target_form = FC_TARGET_AUTHORITY;
        info->path.at = end;
        info->path.len = 0;
        return 0;
    }
    if (t[0] == '/') {
        info->target_form = FC_TARGET_ORIGIN;
    } else if (n == 1 && t[0] == '*') {
        if (!(req->method.len == 7 && memcmp(req->method.at, "OPTIONS", 7) == 0)) {
            info->error = FC_ERR_TARGET_FORM;
            return -1;
        }
        info->target_form = FC_TARGET_ASTERISK;
        info->path.at = t;
        info->path.len = 1;
        return 0;
    } else {
        /* absolute-form: scheme "://" authority path-abempty [ "?" query ] */
        const char *c = t;
        int scheme_ok = c < end && ((*c | 0x20) >= 'a' && (*c | 0x20) <= 'z');
        while (scheme_ok && c < end && *c != ':') {
            char ch = *c;
            if (!(((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z') || fc_is_digit(ch) || ch == '+' ||
                  ch == '-' || ch == '.'))
                scheme_ok = 0;
            ++c;
        }
        if (!scheme_ok || end - c < 4 || c[1] != '/' || c[2] != '/' || c + 3 == end) {
            info->error = FC_ERR_TARGET_FORM;
            return -1;
        }
        const char *scheme_end = c, *authority = c + 3;
        c = authority;
        while (c < end && *c != '/' && *c != '?')
            ++c;
        /* the authority as Host's grammar has it (so no userinfo, which RFC
         * 9110 4.2.4 says to treat as an error); empty only where the scheme
         * allows it ("file:///"): never for http(s) (RFC 9110 4.2.1) */
        if (c == authority ? fc_token_eq(t, (size_t)(scheme_end - t), FC_LIT("http")) ||
                                 fc_token_eq(t, (size_t)(scheme_end - t), FC_LIT("https"))
                           : !fc_authority_ok(authority, (size_t)(c - authority), 0)) {
            info->error = FC_ERR_TARGET_AUTHORITY;
            return -1;
        }
        info->target_form = FC_TARGET_ABSOLUTE;
        path = c;
    }
    const char *q = memchr(path, '?', (size_t)(end - path));
    const char *path_end = q ? q : end;
    if (q) {
        info->query.at = q + 1;
        info->query.len = (size_t)(end - q - 1);
    }
    if (path_end == path) {
        static const char slash[] = "/";
        info->path.at = slash; /* absolute-form with an empty path means "/" */
        info->path.len = 1;
    } else {
        info->path.at = path;
        info->path.len = (size_t)(path_end - path);
    }
    return 0;
}

int fc_http_request_info(const fc_request_head_t *req, fc_request_info_t *info)
{
    struct fc_length_ctx length = {0, 0};
    struct fc_coding_ctx coding = {0, 0};
    unsigned connection = 0;
    int hosts = 0, has_te = 0, expect_continue = 0;

    info->flags = 0;
    info->content_length = 0;
    info->host_index = -1;
    info->upgrade_index = -1;
    info->error = FC_OK;

    for (size_t i = 0; i < req->num_headers; ++i) {
        const fc_span_t *name = &req->headers[i].name;
        fc_span_t value = req->headers[i].value;
        switch (name->len) {
        case 4:
            if (fc_token_eq(name->at, 4, FC_LIT("host"))) {
                ++hosts;
                info->host_index = (int)i;
            }
            break;
        case 6:
            if (fc_token_eq(name->at, 6, FC_LIT("expect")) &&
                fc_token_eq(value.at, value.len, FC_LIT("100-continue")))
                expect_continue = 1;
            break;
        case 7:
            if (fc_token_eq(name->at, 7, FC_LIT("upgrade")))
                info->upgrade_index = (int)i;
            break;
        case 10:
            if (fc_token_eq(name->at, 10, FC_LIT("connection")))
                fc_each_list_item(value, fc_connection_item, &connection);
            break;
        case 14:
            if (fc_token_eq(name->at, 14, FC_LIT("content-length"))) {
                /* Content-Length = 1*DIGIT (RFC 9110 8.6), one per field: the
                 * list form "5, 5" is refused (as nginx, Node and Go do)
                 * rather than handed on, so no application or next hop
                 * ever sees a list; identical repeated fields still pass.
                 * An empty value is malformed, not absent. */
                if (value.len == 0 || fc_length_item(value.at, value.len, &length)) {
                    info->error = FC_ERR_CONTENT_LENGTH;
                    return -1;
                }
            }
            break;
        case 17:
            if (fc_token_eq(name->at, 17, FC_LIT("transfer-encoding"))) {
                has_te = 1;
                if (fc_each_list_item(value, fc_coding_item, &coding)) {
                    info->error = FC_ERR_TE_BAD;
                    return -1;
                }
            }
            break;
        default:
            break;
        }
    }

    if (has_te) {
        if (length.seen) { /* RFC 9112 6.3: a smuggling vector; refuse */
            info->error = FC_ERR_CL_AND_TE;
            return -1;
        }
        if (req->minor_version == 0) { /* RFC 9112 6.1: faulty framing */
            info->error = FC_ERR_TE_BAD;
            return -1;
        }
        if (coding.other) {
            info->error = FC_ERR_TE_UNSUPPORTED;
            return -1;
        }
        if (!coding.chunked) {
            info->error = FC_ERR_TE_BAD;
            return -1;
        }
        info->flags |= FC_REQ_CHUNKED;
    } else if (length.seen) {
        info->flags |= FC_REQ_HAS_LENGTH;
        info->content_length = length.value;
    }

    if (req->minor_version == 1 ? hosts != 1 : hosts > 1) { /* RFC 9112 3.2 */
        info->error = FC_ERR_HOST;
        return -1;
    }
    if (info->host_index >= 0) { /* RFC 9112 3.2: an invalid Host value gets 400 */
        fc_span_t host = req->headers[info->host_index].value;
        if (!fc_authority_ok(host.at, host.len, 0)) {
            info->error = FC_ERR_HOST_VALUE;
            return -1;
        }
    }
    if (fc_classify_target(req, info) != 0)
        return -1;

    if (connection & FC_CONN_OTHER)
        info->flags |= FC_REQ_CONNECTION_NAMES;
    if (req->minor_version == 1 ? !(connection & FC_CONN_CLOSE)
                                : (connection & FC_CONN_KEEP_ALIVE) && !(connection & FC_CONN_CLOSE))
        info->flags |= FC_REQ_KEEP_ALIVE;
    if (expect_continue && req->minor_version == 1)
        info->flags |= FC_REQ_EXPECT_CONTINUE;
    if ((connection & FC_CONN_UPGRADE) && info->upgrade_index >= 0)
        info->flags |= FC_REQ_UPGRADE;
    return 0;
}

int fc_http_response_info(const fc_response_head_t *resp, int request_was_head,
                          fc_response_info_t *info)
{
    struct fc_length_ctx length = {0, 0};
    struct fc_coding_ctx coding = {0, 0};
    unsigned connection = 0;
    int has_te = 0, te_bad = 0;

    info->flags = 0;
    info->content_length = 0;
    info->error = FC_OK;
    for (size_t i = 0; i < resp->num_headers; ++i) {
        const fc_span_t *name = &resp->headers[i].name;
        fc_span_t value = resp->headers[i].value;
        if (fc_token_eq(name->at, name->len, FC_LIT("content-length"))) {
            if (value.len == 0 || fc_each_list_item(value, fc_length_item, &length) || !length.seen) {
                info->error = FC_ERR_CONTENT_LENGTH;
                return -1;
            }
        } else if (fc_token_eq(name->at, name->len, FC_LIT("transfer-encoding"))) {
            has_te = 1;
            if (fc_each_list_item(value, fc_coding_item, &coding))
                te_bad = 1;
        } else if (fc_token_eq(name->at, name->len, FC_LIT("connection"))) {
            fc_each_list_item(value, fc_connection_item, &connection);
        }
    }
    if (connection & FC_CONN_OTHER)
        info->flags |= FC_RESP_CONNECTION_NAMES;
    if (resp->minor_version >= 1 ? !(connection & FC_CONN_CLOSE)
                                 : (connection & FC_CONN_KEEP_ALIVE) && !(connection & FC_CONN_CLOSE))
        info->flags |= FC_RESP_KEEP_ALIVE;
    if (request_was_head || (resp->status >= 100 && resp->status < 200) || resp->status == 204 ||
        resp->status == 304) {
        info->flags |= FC_RESP_NO_BODY;
        return 0;
    }
    if (has_te) {
        /* RFC 9112 6.3 items 3 and 4: chunked last frames the body; any
         * other coding means read until close; TE overrides CL */
        if (coding.chunked && !te_bad && resp->minor_version >= 1) {
            info->flags |= FC_RESP_CHUNKED;
        } else {
            info->flags |= FC_RESP_UNTIL_CLOSE;
            info->flags &= ~(unsigned)FC_RESP_KEEP_ALIVE;
        }
        return 0;
    }
    if (length.seen) {
        info->flags |= FC_RESP_HAS_LENGTH;
        info->content_length = length.value;
        return 0;
    }
    info->flags |= FC_RESP_UNTIL_CLOSE;
    info->flags &= ~(unsigned)FC_RESP_KEEP_ALIVE;
    return 0;
}

/* ---- chunked framing (RFC 9112 7.1) ------------------------------------ */

/* chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
 * chunk-ext-name = token
 * chunk-ext-val  = token / quoted-string
 * quoted-string  = DQUOTE *( qdtext / quoted-pair ) DQUOTE   ; RFC 9110 5.6.4
 * qdtext         = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
 * quoted-pair    = "\" ( HTAB / SP / VCHAR / obs-text )
 * BWS            = *( SP / HTAB )
 * (RFC 9112 7.1.1.) Extensions mean nothing to us, but one a proxy or the
 * application reads differently is how chunk-size lines get smuggled, so
 * the grammar is checked in full. p is at the first byte after the size;
 * returns the CR that ends the line, `limit` when the bytes ran out before
 * a decision, or NULL with *error set. */
static const char *fc_scan_chunk_ext(const char *p, const char *limit, fc_http_error_t *error)
{
    const char *q;
    for (;;) {
        while (p < limit && (*p == ' ' || *p == '\t'))
            ++p;
        if (p == limit)
            return limit;
        if (*p != ';')
            goto bad;
        do
            ++p;
        while (p < limit && (*p == ' ' || *p == '\t'));
        q = scan_token_scalar(p, limit);
        if (q == limit)
            return limit;
        if (q == p)
            goto bad; /* no name */
        p = q;
        while (q < limit && (*q == ' ' || *q == '\t'))
            ++q;
        if (q == limit)
            return limit;
        if (*q == '=') {
            do
                ++q;
            while (q < limit && (*q == ' ' || *q == '\t'));
            if (q == limit)
                return limit;
            p = q;
            if (*p == '"') {
                for (++p;; ++p) {
                    if (p == limit)
                        return limit;
                    unsigned char c = (unsigned char)*p;
                    if (c == '"')
                        break;
                    if (c == '\\') {
                        if (++p == limit)
                            return limit;
                        c = (unsigned char)*p;
                    }
                    if (!fc_value_ok(c)) /* HTAB, SP, VCHAR, obs-text */
                        goto bad;
                }
                ++p;
            } else {
                q = scan_token_scalar(p, limit);
                if (q == p)
                    goto bad; /* no value */
                p = q;
            }
            if (p == limit)
                return limit;
        }
        /* after a name or a value: the line ends, or BWS ";" starts another */
        if (*p == '\r')
            return p;
    }
bad:
    *error = *p == '\n' ? FC_ERR_BARE_LF : FC_ERR_CHUNK_EXT;
    return NULL;
}

int fc_http_parse_chunk_size(const char *buf, size_t len, size_t max_line,
                             uint64_t *size, fc_http_error_t *error)
{
    const char *p = buf, *end = buf + len;
    const char *limit = len > max_line ? buf + max_line : end;
    uint64_t v = 0;
    int h;

    *error = FC_OK;
    while (p < limit && (h = fc_hex_value(*p)) >= 0) {
        if (v > (UINT64_C(0x7fffffffffffffff) >> 4)) {
            *error = FC_ERR_CHUNK_SIZE;
            return FC_HTTP_INVALID;
        }
        v = (v << 4) | (uint64_t)h;
        ++p;
    }
    if (p == limit)
        goto runout;
    if (p == buf) {
        *error = FC_ERR_CHUNK_SIZE;
        return FC_HTTP_INVALID;
    }
    if (*p != '\r') {
        /* extensions start with BWS or ';': anything else ends a bad size */
        const char *ext = p;
        while (ext < limit && (*ext == ' ' || *ext == '\t'))
            ++ext;
        if (ext == limit)
            goto runout;
        if (*ext != ';') {
            *error = *ext == '\n' ? FC_ERR_BARE_LF : FC_ERR_CHUNK_SIZE;
            return FC_HTTP_INVALID;
        }
        p = fc_scan_chunk_ext(ext, limit, error);
        if (p == NULL)
            return FC_HTTP_INVALID;
        if (p == limit)
            goto runout;
    }
    if (p + 1 == limit)
        goto runout;
    if (p[1] != '\n') {
        *error = FC_ERR_BARE_CR;
        return FC_HTTP_INVALID;
    }
    *size = v;
    return (int)(p + 2 - buf);

runout:
    if (limit < end || len >= max_line) {
        *error = FC_ERR_CHUNK_EXT;
        return FC_HTTP_INVALID;
    }
    return FC_HTTP_PARTIAL;
}

int fc_ascii_only(const char *p, size_t n)
{
    uint64_t acc = 0, word;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&word, p + i, 8); /* unaligned load, compiled to one mov */
        acc |= word;
    }
    for (; i < n; ++i)
        acc |= (unsigned char)p[i];
    return (acc & UINT64_C(0x8080808080808080)) == 0;
}

/* ---- errors ------------------------------------------------------------ */

static const struct {
    int status;
    const char *text;
} fc_errors[FC_ERR__COUNT] = {
    [FC_OK] = {200, "ok"},
    [FC_ERR_METHOD] = {400, "invalid method: empty or a non-token character"},
    [FC_ERR_TARGET] = {400, "invalid request target: a byte outside visible ASCII"},
    [FC_ERR_REQUEST_LINE] = {400, "malformed request line: expected METHOD SP TARGET SP VERSION CRLF"},
    [FC_ERR_VERSION] = {400, "malformed HTTP version"},
    [FC_ERR_VERSION_UNSUPPORTED] = {505, "HTTP version not supported (only HTTP/1.0 and HTTP/1.1)"},
    [FC_ERR_LINE_TOO_LONG] = {414, "request line too long"},
    [FC_ERR_HEADER_NAME] = {400, "invalid header name: empty or a non-token character"},
    [FC_ERR_HEADER_SPACE] = {400, "invalid header: whitespace between field name and colon"},
    [FC_ERR_HEADER_VALUE] = {400, "invalid header value: control character"},
    [FC_ERR_OBS_FOLD] = {400, "invalid header: obsolete line folding or leading whitespace"},
    [FC_ERR_BARE_CR] = {400, "bare CR: CR not followed by LF"},
    [FC_ERR_BARE_LF] = {400, "bare LF: line ending without CR"},
    [FC_ERR_TOO_MANY_HEADERS] = {431, "too many header fields"},
    [FC_ERR_HEAD_TOO_LARGE] = {431, "header section too large"},
    [FC_ERR_STATUS] = {502, "malformed status line"},
    [FC_ERR_CHUNK_SIZE] = {400, "invalid chunk size: not hex, empty or overflowing"},
    [FC_ERR_CHUNK_EXT] = {400, "invalid chunk extension or chunk size line too long"},
    [FC_ERR_CHUNK_CRLF] = {400, "chunk data not followed by CRLF"},
    [FC_ERR_CONTENT_LENGTH] = {400, "invalid Content-Length: malformed or conflicting values"},
    [FC_ERR_CL_AND_TE] = {400, "both Content-Length and Transfer-Encoding"},
    [FC_ERR_TE_UNSUPPORTED] = {501, "unsupported transfer coding (only chunked)"},
    [FC_ERR_TE_BAD] = {400, "invalid Transfer-Encoding (malformed, chunked twice or not last, or in HTTP/1.0)"},
    [FC_ERR_HOST] = {400, "HTTP/1.1 request needs exactly one Host header"},
    [FC_ERR_HOST_VALUE] = {400, "invalid Host header: not uri-host [\":\" port] (RFC 3986)"},
    [FC_ERR_TARGET_FORM] = {400, "request target form not allowed for this method"},
    [FC_ERR_TARGET_AUTHORITY] = {400, "invalid request target: its authority is not uri-host [\":\" port] (RFC 3986)"},
    [FC_ERR_TARGET_FRAGMENT] = {400, "invalid request target: a fragment ('#') is never sent"},
    [FC_ERR_BODY_TOO_LARGE] = {413, "request body too large"},
};

int fc_http_error_status(fc_http_error_t error)
{
    return (error >= 0 && error < FC_ERR__COUNT) ? fc_errors[error].status : 500;
}

const char *fc_http_error_text(fc_http_error_t error)
{
    return (error >= 0 && error < FC_ERR__COUNT) ? fc_errors[error].text : "unknown error";
}
