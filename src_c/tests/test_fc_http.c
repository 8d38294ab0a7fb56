/* Tests of fc_http under AddressSanitizer and UndefinedBehaviorSanitizer.
 *
 * Every input is copied so that its last byte sits right before a PROT_NONE
 * page: a read past the end crashes instead of passing silently. Each input
 * is parsed at every SIMD level the CPU has, and at every prefix length,
 * and the levels must agree byte for byte (same return, same error, same
 * spans). Usage: test_fc_http [corpus files...]
 */
#define _GNU_SOURCE
#include "fc_http.h"
#include "fc_test.h"   /* CHECK, failures, checks, guarded buffers */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>


/* ---- comparing levels -------------------------------------------------- */

#define MAX_HEADERS 100

typedef struct {
    int rc;
    fc_http_error_t error;
    fc_request_head_t head;
    fc_header_t headers[MAX_HEADERS];
} request_result_t;

static const fc_http_limits_t default_limits = {8190, 32768};

static void parse_at(fc_simd_level_t level, const char *buf, size_t len, const fc_http_limits_t *limits,
                     request_result_t *out)
{
    fc_http_set_simd(level);
    memset(out, 0, sizeof(*out));
    out->head.headers = out->headers;
    out->head.num_headers = MAX_HEADERS;
    out->rc = fc_http_parse_request(buf, len, 0, limits, &out->head);
    out->error = out->head.error;
}

static int spans_equal(fc_span_t a, fc_span_t b) { return a.at == b.at && a.len == b.len; }

static int results_equal(const request_result_t *a, const request_result_t *b)
{
    if (a->rc != b->rc || a->error != b->error)
        return 0;
    if (a->rc < 0)
        return 1;
    if (!spans_equal(a->head.method, b->head.method) || !spans_equal(a->head.target, b->head.target) ||
        a->head.minor_version != b->head.minor_version || a->head.num_headers != b->head.num_headers)
        return 0;
    for (size_t i = 0; i < a->head.num_headers; ++i)
        if (!spans_equal(a->headers[i].name, b->headers[i].name) ||
            !spans_equal(a->headers[i].value, b->headers[i].value))
            return 0;
    return 1;
}

static fc_simd_level_t max_level;

/* Parses buf at every level on a guarded copy; the levels must agree.
 * Returns the scalar result in *out. */
static void parse_all_levels(const char *src, size_t len, const fc_http_limits_t *limits,
                             request_result_t *out, const char *label)
{
    static request_result_t other;
    guarded_t g = guarded_copy(src, len);
    parse_at(FC_SIMD_SCALAR, g.data, len, limits, out);
    for (int level = FC_SIMD_SCALAR + 1; level <= (int)max_level; ++level) {
        parse_at((fc_simd_level_t)level, g.data, len, limits, &other);
        CHECK(results_equal(out, &other), "%s: level %d disagrees with scalar at len %zu (rc %d/%d, error %d/%d)",
              label, level, len, out->rc, other.rc, out->error, other.error);
    }
    /* spans must point into the guarded copy; rebase them onto src */
    if (out->rc > 0) {
        ptrdiff_t shift = src - g.data;
        out->head.method.at += shift;
        out->head.target.at += shift;
        for (size_t i = 0; i < out->head.num_headers; ++i) {
            out->headers[i].name.at += shift;
            out->headers[i].value.at += shift;
        }
    }
    guarded_free(g);
}

/* Every prefix of a complete input must be PARTIAL or fail with the same
 * error as the whole; the whole must give `whole`. */
static void check_prefixes(const char *src, size_t len, const char *label)
{
    request_result_t whole, part;
    parse_all_levels(src, len, &default_limits, &whole, label);
    for (size_t n = 0; n < len; ++n) {
        parse_all_levels(src, n, &default_limits, &part, label);
        if (whole.rc > 0) {
            if (n < (size_t)whole.rc)
                CHECK(part.rc == FC_HTTP_PARTIAL, "%s: prefix %zu of a valid head gave %d (error %d)", label, n,
                      part.rc, part.error);
        } else if (whole.rc == FC_HTTP_INVALID) {
            CHECK(part.rc == FC_HTTP_PARTIAL || (part.rc == FC_HTTP_INVALID && part.error == whole.error),
                  "%s: prefix %zu gave %d/%d, whole gave error %d", label, n, part.rc, part.error, whole.error);
        }
    }
}

/* ---- unit cases -------------------------------------------------------- */

static int span_is(fc_span_t s, const char *text) { return s.len == strlen(text) && memcmp(s.at, text, s.len) == 0; }

static void test_request_valid(void)
{
    const char *req = "GET /index.html?x=1 HTTP/1.1\r\nHost: example.com\r\nX-Empty:\r\nX-Pad: \t a b \t\r\n\r\nBODY";
    request_result_t r;
    parse_all_levels(req, strlen(req), &default_limits, &r, "valid");
    CHECK(r.rc == (int)(strlen(req) - 4), "valid: rc %d", r.rc);
    CHECK(span_is(r.head.method, "GET"), "valid: method");
    CHECK(span_is(r.head.target, "/index.html?x=1"), "valid: target");
    CHECK(r.head.minor_version == 1, "valid: version");
    CHECK(r.head.num_headers == 3, "valid: %zu headers", r.head.num_headers);
    CHECK(span_is(r.headers[0].name, "Host") && span_is(r.headers[0].value, "example.com"), "valid: host");
    CHECK(span_is(r.headers[1].value, ""), "valid: empty value");
    CHECK(span_is(r.headers[2].value, "a b"), "valid: OWS trimmed");
    check_prefixes(req, strlen(req), "valid prefixes");
}

typedef struct {
    const char *input;
    fc_http_error_t error;
} invalid_case_t;

static void test_request_invalid(void)
{
    static const invalid_case_t cases[] = {
        {"G@T / HTTP/1.1\r\nHost: a\r\n\r\n", FC_ERR_METHOD},
        {" GET / HTTP/1.1\r\nHost: a\r\n\r\n", FC_ERR_METHOD},
        {"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", FC_ERR_REQUEST_LINE},
        {"GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", FC_ERR_TARGET},
        {"GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", FC_ERR_TARGET},
        {"GET / HTTP/2.0\r\nHost: a\r\n\r\n", FC_ERR_VERSION_UNSUPPORTED},
        {"GET / http/1.1\r\nHost: a\r\n\r\n", FC_ERR_VERSION},
        {"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", FC_ERR_REQUEST_LINE},
        {"GET / HTTP/1.1\nHost: a\r\n\r\n", FC_ERR_BARE_LF},
        {"GET / HTTP/1.1\rHost: a\r\n\r\n", FC_ERR_BARE_CR},
        {"GET / HTTP/1.1\r\nHost : a\r\n\r\n", FC_ERR_HEADER_SPACE},
        {"GET / HTTP/1.1\r\nHo(st: a\r\n\r\n", FC_ERR_HEADER_NAME},
        {"GET / HTTP/1.1\r\n: a\r\n\r\n", FC_ERR_HEADER_NAME},
        {"GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n", FC_ERR_HEADER_VALUE},
        {"GET / HTTP/1.1\r\nHost: a\x7f\r\n\r\n", FC_ERR_HEADER_VALUE},
        {"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", FC_ERR_BARE_CR},
        {"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", FC_ERR_OBS_FOLD},
        {"GET / HTTP/1.1\r\nHost: a\r\n\n", FC_ERR_BARE_LF},
        {"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", FC_ERR_TARGET_FRAGMENT},
        {"GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa#b HTTP/1.1\r\nHost: a\r\n\r\n",
         FC_ERR_TARGET_FRAGMENT},
        {"GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa# HTTP/1.1\r\nHost: a\r\n\r\n", FC_ERR_TARGET_FRAGMENT},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        request_result_t r;
        char label[64];
        snprintf(label, sizeof(label), "invalid[%zu]", i);
        parse_all_levels(cases[i].input, strlen(cases[i].input), &default_limits, &r, label);
        CHECK(r.rc == FC_HTTP_INVALID && r.error == cases[i].error, "%s: rc %d error %d, expected error %d", label,
              r.rc, r.error, cases[i].error);
        check_prefixes(cases[i].input, strlen(cases[i].input), label);
    }
    /* NUL in a value: strlen cannot carry it */
    static const char nul[] = "GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n";
    request_result_t r;
    parse_all_levels(nul, sizeof(nul) - 1, &default_limits, &r, "nul");
    CHECK(r.rc == FC_HTTP_INVALID && r.error == FC_ERR_HEADER_VALUE, "nul: rc %d error %d", r.rc, r.error);
}

static void test_limits(void)
{
    fc_http_limits_t small = {32, 64};
    request_result_t r;
    const char *long_line = "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    parse_all_levels(long_line, strlen(long_line), &small, &r, "414 partial");
    CHECK(r.rc == FC_HTTP_INVALID && r.error == FC_ERR_LINE_TOO_LONG, "414 partial: rc %d error %d", r.rc, r.error);
    const char *fits = "GET /aaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n"; /* 33-byte line: one over */
    parse_all_levels(fits, strlen(fits), &small, &r, "414 by one");
    CHECK(r.rc == FC_HTTP_INVALID && r.error == FC_ERR_LINE_TOO_LONG, "414 by one: rc %d", r.rc);
    const char *exact = "GET /aaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n"; /* 32-byte line */
    parse_all_levels(exact, strlen(exact), &small, &r, "line at limit");
    CHECK(r.rc == (int)strlen(exact), "line at limit: rc %d error %d", r.rc, r.error);
    const char *big_head = "GET / HTTP/1.1\r\nA: 0123456789012345678901234567890123456789\r\nB: 1\r\n";
    parse_all_levels(big_head, strlen(big_head), &small, &r, "431");
    CHECK(r.rc == FC_HTTP_INVALID && r.error == FC_ERR_HEAD_TOO_LARGE, "431: rc %d error %d", r.rc, r.error);

    /* header count */
    fc_header_t hs[2];
    fc_request_head_t head = {.headers = hs, .num_headers = 2};
    const char *three = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    int rc = fc_http_parse_request(three, strlen(three), 0, &default_limits, &head);
    CHECK(rc == FC_HTTP_INVALID && head.error == FC_ERR_TOO_MANY_HEADERS, "count: rc %d error %d", rc, head.error);

    /* CRLF flood before the request line counts toward the head limit */
    char flood[200];
    for (size_t i = 0; i < sizeof(flood); i += 2) {
        flood[i] = '\r';
        flood[i + 1] = '\n';
    }
    parse_all_levels(flood, sizeof(flood), &small, &r, "crlf flood");
    CHECK(r.rc == FC_HTTP_INVALID && r.error == FC_ERR_HEAD_TOO_LARGE, "crlf flood: rc %d error %d", r.rc, r.error);
}

static void test_last_len(void)
{
    const char *req = "GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: x\r\n\r\n";
    size_t len = strlen(req);
    fc_header_t hs[10];
    size_t last = 0;
    int rc = FC_HTTP_PARTIAL;
    for (size_t n = 1; n <= len && rc == FC_HTTP_PARTIAL; ++n) {
        fc_request_head_t head = {.headers = hs, .num_headers = 10};
        guarded_t g = guarded_copy(req, n);
        rc = fc_http_parse_request(g.data, n, last, &default_limits, &head);
        guarded_free(g);
        if (rc == FC_HTTP_PARTIAL)
            last = n;
        else
            CHECK(n == len && rc == (int)len, "last_len: complete at %zu with rc %d", n, rc);
    }
    CHECK(rc == (int)len, "last_len: final rc %d", rc);
}

/* Feeds src one byte more at a time with last_len, as a server does. */
static int parse_incrementally(const char *src, size_t len, fc_http_error_t *error)
{
    fc_header_t hs[MAX_HEADERS];
    size_t last = 0;
    for (size_t n = 1; n <= len; ++n) {
        fc_request_head_t head = {.headers = hs, .num_headers = MAX_HEADERS};
        guarded_t g = guarded_copy(src, n);
        int rc = fc_http_parse_request(g.data, n, last, &default_limits, &head);
        guarded_free(g);
        if (rc != FC_HTTP_PARTIAL) {
            *error = head.error;
            return rc;
        }
        last = n;
    }
    return FC_HTTP_PARTIAL;
}

static void test_incremental_errors(void)
{
    fc_http_error_t err = FC_OK;
    const char *crlf_first = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    int rc = parse_incrementally(crlf_first, strlen(crlf_first), &err);
    CHECK(rc == (int)strlen(crlf_first), "leading CRLF split: rc %d error %d", rc, err);
    const char *bare_lf = "GET / HTTP/1.1\r\nHost: x\n\r\n";
    rc = parse_incrementally(bare_lf, strlen(bare_lf), &err);
    CHECK(rc == FC_HTTP_INVALID && err == FC_ERR_BARE_LF, "bare LF split: rc %d error %d", rc, err);
    const char *bad_name = "GET / HTTP/1.1\r\nHo(st: x\r\n";
    rc = parse_incrementally(bad_name, strlen(bad_name), &err);
    CHECK(rc == FC_HTTP_INVALID && err == FC_ERR_HEADER_NAME, "bad name decided at its line end: rc %d", rc);
}

static void test_response(void)
{
    const char *resp = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    fc_header_t hs[10];
    fc_response_head_t r = {.headers = hs, .num_headers = 10};
    guarded_t g = guarded_copy(resp, strlen(resp));
    int rc = fc_http_parse_response(g.data, strlen(resp), 0, &default_limits, &r);
    CHECK(rc == (int)strlen(resp) && r.status == 404 && span_is(r.reason, "Not Found") && r.num_headers == 1,
          "response: rc %d status %d", rc, r.status);
    for (size_t n = 0; n < strlen(resp); ++n) {
        fc_response_head_t p = {.headers = hs, .num_headers = 10};
        guarded_t gp = guarded_copy(resp, n);
        rc = fc_http_parse_response(gp.data, n, 0, &default_limits, &p);
        CHECK(rc == FC_HTTP_PARTIAL, "response prefix %zu: rc %d", n, rc);
        guarded_free(gp);
    }
    guarded_free(g);
    const char *no_reason = "HTTP/1.0 204\r\n\r\n";
    fc_response_head_t r2 = {.headers = hs, .num_headers = 10};
    rc = fc_http_parse_response(no_reason, strlen(no_reason), 0, &default_limits, &r2);
    CHECK(rc == (int)strlen(no_reason) && r2.status == 204 && r2.reason.len == 0, "no reason: rc %d", rc);
    const char *bad = "HTTP/1.1 2x0 OK\r\n\r\n";
    fc_response_head_t r3 = {.headers = hs, .num_headers = 10};
    rc = fc_http_parse_response(bad, strlen(bad), 0, &default_limits, &r3);
    CHECK(rc == FC_HTTP_INVALID && r3.error == FC_ERR_STATUS, "bad status: rc %d", rc);
}

static int info_of(const char *req, fc_request_info_t *info)
{
    static fc_header_t hs[MAX_HEADERS];
    fc_request_head_t head = {.headers = hs, .num_headers = MAX_HEADERS};
    int rc = fc_http_parse_request(req, strlen(req), 0, &default_limits, &head);
    if (rc < 0) {
        info->error = head.error;
        return -2;
    }
    return fc_http_request_info(&head, info);
}

static int response_info_of(const char *resp, fc_response_info_t *info)
{
    static fc_header_t hs[MAX_HEADERS];
    fc_response_head_t head = {.headers = hs, .num_headers = MAX_HEADERS};
    if (fc_http_parse_response(resp, strlen(resp), 0, &default_limits, &head) < 0)
        return -2;
    return fc_http_response_info(&head, 0, info);
}

static void test_connection_names(void)
{
    fc_request_info_t req;
    fc_response_info_t resp;
    /* set when Connection lists an option that may name a field (the
     * proxy then looks for the fields it names), and only then */
    CHECK(info_of("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, x-secret\r\nX-Secret: 1\r\n\r\n", &req) == 0 &&
              (req.flags & FC_REQ_CONNECTION_NAMES) && (req.flags & FC_REQ_KEEP_ALIVE),
          "info: Connection names a field");
    CHECK(info_of("GET / HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive, Upgrade, close\r\n\r\n", &req) == 0 &&
              !(req.flags & FC_REQ_CONNECTION_NAMES),
          "info: Connection with the options alone");
    CHECK(info_of("GET / HTTP/1.1\r\nHost: h\r\nX-Connection: x-secret\r\n\r\n", &req) == 0 &&
              !(req.flags & FC_REQ_CONNECTION_NAMES),
          "info: no Connection field");
    CHECK(response_info_of("HTTP/1.1 200 OK\r\nCONNECTION: keep-alive, x-a\r\nContent-Length: 0\r\n\r\n", &resp) == 0 &&
              (resp.flags & FC_RESP_CONNECTION_NAMES) && (resp.flags & FC_RESP_HAS_LENGTH),
          "response info: Connection names a field");
    CHECK(response_info_of("HTTP/1.1 204 No Content\r\nConnection: x-a\r\n\r\n", &resp) == 0 &&
              (resp.flags & FC_RESP_CONNECTION_NAMES) && (resp.flags & FC_RESP_NO_BODY),
          "response info: Connection names a field of a bodiless response");
    CHECK(response_info_of("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n", &resp) == 0 &&
              !(resp.flags & FC_RESP_CONNECTION_NAMES) && (resp.flags & FC_RESP_KEEP_ALIVE),
          "response info: Connection with an option alone");
}

static void test_request_info(void)
{
    fc_request_info_t info;
    CHECK(info_of("POST /a?b=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 42\r\n\r\n", &info) == 0 &&
              (info.flags & FC_REQ_HAS_LENGTH) && info.content_length == 42 && (info.flags & FC_REQ_KEEP_ALIVE) &&
              span_is(info.path, "/a") && span_is(info.query, "b=1"),
          "info: content-length");
    CHECK(info_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 05\r\n\r\n", &info) == 0 &&
              info.content_length == 5,
          "info: identical lengths");
    CHECK(info_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n", &info) == -1 &&
              info.error == FC_ERR_CONTENT_LENGTH,
          "info: a list of identical lengths");
    CHECK(info_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5,\r\n\r\n", &info) == -1 &&
              info.error == FC_ERR_CONTENT_LENGTH,
          "info: a list with an empty element");
    CHECK(info_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", &info) == -1 &&
              info.error == FC_ERR_CONTENT_LENGTH,
          "info: differing lengths");
    CHECK(info_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n", &info) == -1 &&
              info.error == FC_ERR_CONTENT_LENGTH,
          "info: signed length");
    CHECK(info_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n", &info) == -1,
          "info: huge length");
    CHECK(info_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", &info) ==
                  -1 &&
              info.error == FC_ERR_CL_AND_TE,
          "info: CL and TE");
    CHECK(info_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", &info) == -1 &&
              info.error == FC_ERR_TE_UNSUPPORTED,
          "info: gzip");
    CHECK(info_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", &info) == -1 &&
              info.error == FC_ERR_TE_BAD,
          "info: chunked not last");
    CHECK(info_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: CHUNKED\r\n\r\n", &info) == 0 &&
              (info.flags & FC_REQ_CHUNKED),
          "info: chunked");
    CHECK(info_of("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", &info) == -1 && info.error == FC_ERR_TE_BAD,
          "info: TE in 1.0");
    CHECK(info_of("GET / HTTP/1.1\r\n\r\n", &info) == -1 && info.error == FC_ERR_HOST, "info: no host");
    CHECK(info_of("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", &info) == -1 && info.error == FC_ERR_HOST,
          "info: two hosts");
    CHECK(info_of("GET / HTTP/1.0\r\n\r\n", &info) == 0 && !(info.flags & FC_REQ_KEEP_ALIVE), "info: 1.0 close");
    CHECK(info_of("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &info) == 0 && (info.flags & FC_REQ_KEEP_ALIVE),
          "info: 1.0 keep-alive");
    CHECK(info_of("GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, close\r\n\r\n", &info) == 0 &&
              !(info.flags & FC_REQ_KEEP_ALIVE),
          "info: 1.1 close");
    CHECK(info_of("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n", &info) == 0 &&
              (info.flags & FC_REQ_EXPECT_CONTINUE),
          "info: expect");
    CHECK(info_of("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", &info) == 0 &&
              (info.flags & FC_REQ_UPGRADE) && info.upgrade_index == 2,
          "info: upgrade");
    CHECK(info_of("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", &info) == 0 &&
              info.target_form == FC_TARGET_AUTHORITY,
          "info: connect");
    CHECK(info_of("CONNECT /x HTTP/1.1\r\nHost: h\r\n\r\n", &info) == -1 && info.error == FC_ERR_TARGET_FORM,
          "info: connect origin");
    CHECK(info_of("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", &info) == 0 && info.target_form == FC_TARGET_ASTERISK,
          "info: asterisk");
    CHECK(info_of("GET * HTTP/1.1\r\nHost: h\r\n\r\n", &info) == -1 && info.error == FC_ERR_TARGET_FORM,
          "info: asterisk with GET");
    CHECK(info_of("GET http://h.example:80 HTTP/1.1\r\nHost: h\r\n\r\n", &info) == 0 &&
              info.target_form == FC_TARGET_ABSOLUTE && span_is(info.path, "/"),
          "info: absolute empty path");
    CHECK(info_of("GET http://h/p/q?r=1 HTTP/1.1\r\nHost: h\r\n\r\n", &info) == 0 && span_is(info.path, "/p/q") &&
              span_is(info.query, "r=1"),
          "info: absolute");
    CHECK(info_of("GET example.com:80 HTTP/1.1\r\nHost: h\r\n\r\n", &info) == -1 && info.error == FC_ERR_TARGET_FORM,
          "info: authority with GET");
    /* authority-form takes Host's grammar, port required (RFC 9112 3.2.3) */
    static const char *connect_ok[] = {"example.com:443", "[::1]:443", "[2001:db8::7]:8080", "192.0.2.1:0",
                                       "[v1.x]:1", "h:65535"};
    static const char *connect_bad[] = {"[::1]", "[::1]:", "example.com:", "[::1:443", ":443", "u@h:443",
                                        "h:65536", "h:44x", "[g::]:443", "a,b:443", "h:443/x"};
    char line[128];
    for (size_t i = 0; i < sizeof(connect_ok) / sizeof(connect_ok[0]); ++i) {
        snprintf(line, sizeof(line), "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", connect_ok[i], connect_ok[i]);
        CHECK(info_of(line, &info) == 0 && info.target_form == FC_TARGET_AUTHORITY, "connect %s refused: error %d",
              connect_ok[i], info.error);
    }
    for (size_t i = 0; i < sizeof(connect_bad) / sizeof(connect_bad[0]); ++i) {
        snprintf(line, sizeof(line), "CONNECT %s HTTP/1.1\r\nHost: h\r\n\r\n", connect_bad[i]);
        CHECK(info_of(line, &info) == -1 && info.error == FC_ERR_TARGET_AUTHORITY, "connect %s: error %d",
              connect_bad[i], info.error);
    }
    CHECK(info_of("CONNECT example.com HTTP/1.1\r\nHost: h\r\n\r\n", &info) == -1 &&
              info.error == FC_ERR_TARGET_FORM,
          "connect without a port");
    /* absolute-form: the same grammar for its authority, port optional */
    CHECK(info_of("GET http://[::1]:8080/p HTTP/1.1\r\nHost: h\r\n\r\n", &info) == 0 && span_is(info.path, "/p"),
          "absolute ipv6");
    CHECK(info_of("GET file:///etc/passwd HTTP/1.1\r\nHost: h\r\n\r\n", &info) == 0 &&
              span_is(info.path, "/etc/passwd"),
          "absolute file: with an empty authority");
    static const char *absolute_bad[] = {"http://u:p@h/", "http://h:x/", "http://a,b/", "http:///p", "HTTPS://?q",
                                         "http://[::1/", "http://h:65536"};
    for (size_t i = 0; i < sizeof(absolute_bad) / sizeof(absolute_bad[0]); ++i) {
        snprintf(line, sizeof(line), "GET %s HTTP/1.1\r\nHost: h\r\n\r\n", absolute_bad[i]);
        CHECK(info_of(line, &info) == -1 && info.error == FC_ERR_TARGET_AUTHORITY, "absolute %s: error %d",
              absolute_bad[i], info.error);
    }
    static const char *fragments[] = {
        "GET /p#x HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET /p?a=1#x HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET /p# HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET http://h/p#x HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET http://h#x HTTP/1.1\r\nHost: h\r\n\r\n",
        "OPTIONS *# HTTP/1.1\r\nHost: h\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(fragments) / sizeof(fragments[0]); ++i)
        CHECK(info_of(fragments[i], &info) == -2 && info.error == FC_ERR_TARGET_FRAGMENT, "info: fragment %zu", i);
}

/* Host values (RFC 9112 3.2, RFC 3986 3.2.2-3.2.3): each in a request of its own */
static void test_host_values(void)
{
    static const char *valid[] = {
        "", "example.com", "example.com:8080", "EXAMPLE.com:0", "h:65535", "h:", "[::1]:", "localhost:00080",
        "127.0.0.1", "999.1.2.3", "a-b_c~d.e", "xn--caf-dma.example", "caf%C3%A9.example", "!$&'()*+;=",
        "[::1]", "[::1]:443", "[::]", "[1:2:3:4:5:6:7:8]", "[1::8]", "[1:2:3:4:5:6:7::]", "[::2:3:4:5:6:7:8]",
        "[fe80::1:2]:80", "[::ffff:192.0.2.1]", "[1:2:3:4:5:6:1.2.3.4]", "[::1.2.3.4]", "[ABCD:ef01::]",
        "[v1.x]", "[V7.a:b,c!]:1",
        /* 16 bytes and more: the vector path, then the table */
        "a-very-long-subdomain.Example-Company.co.uk:8443", "0123456789abcdefGHIJKLMNOPQRSTUVWXYZ",
        "aaaaaaaaaaaaaaaa!$&'()*+;=_~aaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaa%41aaaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaaa:1",
    };
    static const char *invalid[] = {
        "a, b", "a,b", "user@host", "u:p@host:80", "host/path", "host?q", "host#f", "a b", "host:http",
        "host:65536", "host:99999999999", "host:-1", "host:+80", ":80", ":", "host:80:80", "%zz.example",
        "%4", "a%", "\"host\"", "host\\", "h[::1]", "[::1", "::1", "[]", "[:1]", "[1:]", "[1:::2]", "[1::2::3]",
        "[1:2:3:4:5:6:7:8:9]", "[1:2:3:4:5:6:7]", "[12345::]", "[g::]", "[1:2:3:4:5:6:7::8]",
        "[::1.2.3]", "[::01.2.3.4]", "[::256.2.3.4]", "[::1.2.3.4:5]", "[1.2.3.4]", "[::1]x", "[::1]:x",
        "aaaaaaaaaaaaaaa@bbbbbbbbbbbbbbbb", "aaaaaaaaaaaaaaaa[", "aaaaaaaaaaaaaaaaaaaa`aaaaaaaaaaaaaa",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa{", "aaaaaaaaaaaaaaaaaaaa,aaaaaaaaaa", "aaaaaaaaaa\xc3\xa9" "aaaaaaaaaaaaaaaa",
        "aaaaaaaaaaaaaaaaaaaaaa/aaaaaaaaaa", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\x80", "aaaaaaaaaaaaaaaa:655350",
        "[v.x]", "[v1.]", "[v1x]", "[vx.1]", "[v1.a b]", "[fe80::1%25eth0]", "[::1]]",
    };
    char req[256];
    fc_request_info_t info;
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); ++i) {
        snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", valid[i]);
        int rc = info_of(req, &info);
        CHECK(rc == 0, "host '%s' refused: rc %d error %d", valid[i], rc, info.error);
    }
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); ++i) {
        snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", invalid[i]);
        int rc = info_of(req, &info);
        CHECK(rc == -1 && info.error == FC_ERR_HOST_VALUE, "host '%s' accepted: rc %d error %d", invalid[i], rc,
              info.error);
    }
    /* HTTP/1.0 may omit Host, but one it sends is checked all the same */
    CHECK(info_of("GET / HTTP/1.0\r\n\r\n", &info) == 0, "host: 1.0 without");
    CHECK(info_of("GET / HTTP/1.0\r\nHost: a@b\r\n\r\n", &info) == -1 && info.error == FC_ERR_HOST_VALUE,
          "host: 1.0 with userinfo");
}

static void test_chunk_size(void)
{
    static const struct {
        const char *in;
        int rc;
        uint64_t size;
        fc_http_error_t error;
    } cases[] = {
        {"0\r\n", 3, 0, FC_OK},
        {"1a\r\n", 4, 26, FC_OK},
        {"FF;name=value\r\n", 15, 255, FC_OK},
        {"10 ;a=\"b\"\r\n", 11, 16, FC_OK},
        {"7fffffffffffffff\r\n", 18, UINT64_C(0x7fffffffffffffff), FC_OK},
        {"8000000000000000\r\n", FC_HTTP_INVALID, 0, FC_ERR_CHUNK_SIZE},
        {"ffffffffffffffffff\r\n", FC_HTTP_INVALID, 0, FC_ERR_CHUNK_SIZE},
        {"g\r\n", FC_HTTP_INVALID, 0, FC_ERR_CHUNK_SIZE},
        {"\r\n", FC_HTTP_INVALID, 0, FC_ERR_CHUNK_SIZE},
        {"-1\r\n", FC_HTTP_INVALID, 0, FC_ERR_CHUNK_SIZE},
        {"1\n", FC_HTTP_INVALID, 0, FC_ERR_BARE_LF},
        {"1\rx", FC_HTTP_INVALID, 0, FC_ERR_BARE_CR},
        {"1;a\x01\r\n", FC_HTTP_INVALID, 0, FC_ERR_CHUNK_EXT},
        /* chunk-ext grammar (RFC 9112 7.1.1) */
        {"5;a\r\n", 5, 5, FC_OK},
        {"5 \t; a \t= \tb;c\r\n", 16, 5, FC_OK},
        {"5;a=\"\"\r\n", 8, 5, FC_OK},
        {"5;a=\"x\\\"y;z\\\\\" ;b\r\n", 19, 5, FC_OK},
        {"5;a=\"caf\xe9\t\"\r\n", 13, 5, FC_OK},
        {"5;!#$%&'*+-.^_`|~=~\r\n", 21, 5, FC_OK},
        {"5;\r\n", FC_HTTP_INVALID, 0, FC_ERR_CHUNK_EXT},
        {"5;=x\r\n", FC_HTTP_INVALID, 0, FC_ERR_CHUNK_EXT},
        {"5;a=\r\n", FC_HTTP_INVALID, 0, FC_ERR_CHUNK_EXT},
        {"5;a;\r\n", FC_HTTP_INVALID, 0, FC_ERR_CHUNK_EXT},
        {"5;;a\r\n", FC_HTTP_INVALID, 0, FC_ERR_CHUNK_EXT},
        {"5;a \r\n", FC_HTTP_INVALID, 0, FC_ERR_CHUNK_EXT},
        {"5;a=b \r\n", FC_HTTP_INVALID, 0, FC_ERR_CHUNK_EXT},
        {"5;a b\r\n", FC_HTTP_INVALID, 0, FC_ERR_CHUNK_EXT},
        {"5;a=b c\r\n", FC_HTTP_INVALID, 0, FC_ERR_CHUNK_EXT},
        {"5;a=b=c\r\n", FC_HTTP_INVALID, 0, FC_ERR_CHUNK_EXT},
        {"5;a=(b)\r\n", FC_HTTP_INVALID, 0, FC_ERR_CHUNK_EXT},
        {"5;a@=b\r\n", FC_HTTP_INVALID, 0, FC_ERR_CHUNK_EXT},
        {"5;a=\"b\r\n", FC_HTTP_INVALID, 0, FC_ERR_CHUNK_EXT},
        {"5;a=\"b\"c\r\n", FC_HTTP_INVALID, 0, FC_ERR_CHUNK_EXT},
        {"5;a=\"b\x7f\"\r\n", FC_HTTP_INVALID, 0, FC_ERR_CHUNK_EXT},
        {"5;a=\"\\\x01\"\r\n", FC_HTTP_INVALID, 0, FC_ERR_CHUNK_EXT},
        {"5;a\n", FC_HTTP_INVALID, 0, FC_ERR_BARE_LF},
        {"5;a=\"b\n\"\r\n", FC_HTTP_INVALID, 0, FC_ERR_BARE_LF},
        {"5;a\rx", FC_HTTP_INVALID, 0, FC_ERR_BARE_CR},
        {"5;a=\"b", FC_HTTP_PARTIAL, 0, FC_OK},
        {"5;a=\"b\\", FC_HTTP_PARTIAL, 0, FC_OK},
        {"5 ; a =", FC_HTTP_PARTIAL, 0, FC_OK},
        {"1a", FC_HTTP_PARTIAL, 0, FC_OK},
        {"1a\r", FC_HTTP_PARTIAL, 0, FC_OK},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        uint64_t size = 0;
        fc_http_error_t err;
        guarded_t g = guarded_copy(cases[i].in, strlen(cases[i].in));
        int rc = fc_http_parse_chunk_size(g.data, strlen(cases[i].in), 4096, &size, &err);
        guarded_free(g);
        CHECK(rc == cases[i].rc && (rc < 0 || size == cases[i].size) && (rc != FC_HTTP_INVALID || err == cases[i].error),
              "chunk[%zu] %s: rc %d size %llu error %d", i, cases[i].in, rc, (unsigned long long)size, err);
        /* a prefix is undecided, or already refused for the same reason */
        for (size_t n = 0; n < strlen(cases[i].in); ++n) {
            guarded_t gp = guarded_copy(cases[i].in, n);
            int prc = fc_http_parse_chunk_size(gp.data, n, 4096, &size, &err);
            guarded_free(gp);
            CHECK(prc == FC_HTTP_PARTIAL || (prc == FC_HTTP_INVALID && rc == FC_HTTP_INVALID && err == cases[i].error) ||
                      (rc > 0 && prc == rc),
                  "chunk[%zu] prefix %zu: rc %d error %d", i, n, prc, err);
        }
    }
    uint64_t size;
    fc_http_error_t err;
    int rc = fc_http_parse_chunk_size("1;aaaaaaaaaaaaaaaaaaaaa", 23, 16, &size, &err);
    CHECK(rc == FC_HTTP_INVALID && err == FC_ERR_CHUNK_EXT, "chunk line limit: rc %d", rc);
    rc = fc_http_parse_chunk_size("1;a=\"aaaaaaaaaaaaaaaaa", 23, 16, &size, &err);
    CHECK(rc == FC_HTTP_INVALID && err == FC_ERR_CHUNK_EXT, "chunk line limit in a quoted value: rc %d", rc);
    rc = fc_http_parse_chunk_size("1;a=aaaaaaaaa\r\n", 15, 16, &size, &err);
    CHECK(rc == 15 && size == 1, "chunk line under the limit: rc %d", rc);
}

/* ---- corpus and mutations ---------------------------------------------- */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    *len = fread(buf, 1, (size_t)n, f);
    fclose(f);
    return buf;
}

static void test_corpus_file(const char *path)
{
    size_t len;
    char *buf = read_file(path, &len);
    CHECK(buf != NULL, "cannot read %s", path);
    if (!buf)
        return;
    check_prefixes(buf, len, path);

    /* mutations: flip bytes; the levels must still agree (and not crash) */
    unsigned seed = (unsigned)len * 2654435761u;
    static const char interesting[] = {'\r', '\n', ' ', '\t', ':', '\0', '\x7f', '\x80', '\xff', 'A', '/', '?'};
    for (int round = 0; round < 200 && len > 0; ++round) {
        char *copy = malloc(len);
        memcpy(copy, buf, len);
        for (int k = 0; k < 1 + round % 3; ++k) {
            seed = seed * 1103515245u + 12345u;
            size_t at = (seed >> 8) % len;
            seed = seed * 1103515245u + 12345u;
            copy[at] = (round & 1) ? interesting[(seed >> 8) % sizeof(interesting)] : (char)(seed >> 16);
        }
        request_result_t r;
        parse_all_levels(copy, len, &default_limits, &r, path);
        free(copy);
    }
    free(buf);
}

int main(int argc, char **argv)
{
    max_level = fc_http_set_simd(FC_SIMD_AVX2);
    printf("fc_http tests: SIMD levels 0..%d compared\n", (int)max_level);
    test_request_valid();
    test_request_invalid();
    test_limits();
    test_last_len();
    test_incremental_errors();
    test_response();
    test_request_info();
    test_connection_names();
    test_host_values();
    test_chunk_size();
    for (int i = 1; i < argc; ++i)
        test_corpus_file(argv[i]);
    printf("%d corpus files, %d checks, %d failed\n", argc - 1, checks, failures);
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures ? 1 : 0;
}
