/* Tests of fc_static under AddressSanitizer and UndefinedBehaviorSanitizer.
 *
 * Every input is copied so that its last byte sits right before a PROT_NONE
 * page, and every prefix of each table input is tried too: a read past the
 * end crashes instead of passing silently. fc_path_normalize writes into an
 * exactly-sized heap buffer (ASan) and into an exactly-sized buffer ending
 * at a guard page, and both results must agree.
 *
 * Besides the tables: fc_path_normalize is compared with a reference
 * written the slow, obvious way (decode everything, then a segment stack);
 * dates are compared with a naive day-by-day calendar and with gmtime_r;
 * and a bounded, deterministic mutation loop checks the invariants of
 * every function. Usage: test_fc_static
 */
#define _GNU_SOURCE
#include "fc_static.h"
#include "fc_test.h"   /* CHECK, failures, checks, guarded buffers */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static int cases = 0;

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* a printable label for an input that may hold any byte */
static const char *show(const char *s, size_t len)
{
    static char buf[8][512];
    static int which = 0;
    char *out = buf[which++ & 7];
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < sizeof(buf[0]); ++i) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, 5, "\\x%02x", c);
    }
    out[o] = '\0';
    return out;
}

/* ---- deterministic pseudo-random numbers ------------------------------- */

static uint64_t rng_state = UINT64_C(0x9e3779b97f4a7c15);

static uint32_t rng(void)
{
    /* xorshift64*: small, fast, and the same sequence on every machine */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * UINT64_C(2685821657736338717)) >> 32);
}

static uint32_t rng_below(uint32_t n) { return rng() % n; }

/* ======================================================================== */
/* request paths                                                            */
/* ======================================================================== */

/* A reference normaliser, written for obviousness rather than speed:
 * decode the whole path, check every decoded byte, validate UTF-8 by code
 * points, then resolve segments with a stack. Returns the result length
 * or -1; only success/failure and the bytes are compared, not the reason. */
#define REF_MAX 1024

static int ref_utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char b = s[i];
        size_t len;
        uint32_t cp, min;
        if (b < 0x80) {
            ++i;
            continue;
        } else if ((b & 0xe0) == 0xc0) {
            len = 2, cp = b & 0x1f, min = 0x80;
        } else if ((b & 0xf0) == 0xe0) {
            len = 3, cp = b & 0x0f, min = 0x800;
        } else if ((b & 0xf8) == 0xf0) {
            len = 4, cp = b & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (n - i < len)
            return 0;
        for (size_t k = 1; k < len; ++k) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += len;
    }
    return 1;
}

static int ref_hex(char c)
{
    const char *digits = "0123456789abcdef", *DIGITS = "0123456789ABCDEF";
    for (int k = 0; k < 16; ++k)
        if (c == digits[k] || c == DIGITS[k])
            return k;
    return -1;
}

static long ref_normalize(const char *path, size_t len, char *out)
{
    unsigned char dec[REF_MAX];
    size_t n = 0;
    if (len == 0 || path[0] != '/' || len > REF_MAX)
        return -1;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)path[i];
        if (c == '%') {
            if (i + 2 >= len || ref_hex(path[i + 1]) < 0 || ref_hex(path[i + 2]) < 0)
                return -1;
            c = (unsigned char)(ref_hex(path[i + 1]) * 16 + ref_hex(path[i + 2]));
            if (c == '/')
                return -1;
            i += 3;
        } else {
            i += 1;
        }
        if (c == 0 || c == '\\' || c < 0x20 || c == 0x7f)
            return -1;
        dec[n++] = c;
    }
    if (!ref_utf8_valid(dec, n))
        return -1;

    /* segments: [start, end) offsets into dec */
    size_t seg_start[REF_MAX], seg_len[REF_MAX], depth = 0;
    size_t i = 1, last_len = 0, last_start = 1;
    for (;;) {
        size_t j = i;
        while (j < n && dec[j] != '/')
            ++j;
        last_start = i;
        last_len = j - i;
        if (last_len == 0 || (last_len == 1 && dec[i] == '.')) {
            /* nothing */
        } else if (last_len == 2 && dec[i] == '.' && dec[i + 1] == '.') {
            if (depth == 0)
                return -1;
            --depth;
        } else {
            seg_start[depth] = i;
            seg_len[depth] = last_len;
            ++depth;
        }
        if (j == n)
            break;
        i = j + 1;
    }
    size_t o = 0;
    out[o++] = '/';
    for (size_t k = 0; k < depth; ++k) {
        memcpy(out + o, dec + seg_start[k], seg_len[k]);
        o += seg_len[k];
        if (k + 1 < depth)
            out[o++] = '/';
    }
    /* a final empty, "." or ".." segment leaves a trailing '/' */
    int dir = last_len == 0 || (last_len == 1 && dec[last_start] == '.') ||
              (last_len == 2 && dec[last_start] == '.' && dec[last_start + 1] == '.');
    if (depth > 0 && dir)
        out[o++] = '/';
    return (long)o;
}

/* Runs fc_path_normalize on a guarded copy of the input, writing both into
 * an exactly-sized heap buffer and into an exactly-sized guarded one; the
 * two must agree. The result is copied to `result` (room for len bytes). */
static long normalize_checked(const char *in, size_t len, char *result, const char *label)
{
    guarded_t gin = guarded_copy(in, len);
    guarded_t gout = guarded_alloc(len);
    char *heap = malloc(len ? len : 1);
    long rc = fc_path_normalize(gin.data, len, heap);
    long rc2 = fc_path_normalize(gin.data, len, gout.data);
    CHECK(rc == rc2 && (rc < 0 || memcmp(heap, gout.data, (size_t)rc) == 0),
          "%s: heap and guarded outputs differ (%ld/%ld)", label, rc, rc2);
    if (rc > 0)
        memcpy(result, heap, (size_t)rc);
    free(heap);
    guarded_free(gout);
    guarded_free(gin);
    return rc;
}

/* The invariants of any result, and agreement with the reference. */
static void check_path_result(const char *in, size_t len, long rc, const char *out, const char *label)
{
    static char ref[REF_MAX];
    CHECK(rc <= (long)len, "%s: result %ld longer than input %zu", label, rc, len);
    CHECK(rc != 0 && rc >= FC_PATH_CONTROL, "%s: rc %ld outside the contract", label, rc);
    if (len <= REF_MAX) {
        long want = ref_normalize(in, len, ref);
        CHECK((rc < 0) == (want < 0) && (rc < 0 || (rc == want && memcmp(out, ref, (size_t)rc) == 0)),
              "%s: %ld '%s', reference %ld '%s'", label, rc, rc > 0 ? show(out, (size_t)rc) : "",
              want, want > 0 ? show(ref, (size_t)want) : "");
    }
    if (rc <= 0)
        return;
    size_t n = (size_t)rc;
    CHECK(out[0] == '/', "%s: result does not start with '/'", label);
    int bad_byte = 0, has_percent = 0;
    for (size_t i = 0; i < n; ++i) {
        unsigned char c = (unsigned char)out[i];
        if (c == 0 || c == '\\' || c < 0x20 || c == 0x7f)
            bad_byte = 1;
        if (c == '%')
            has_percent = 1;
    }
    CHECK(!bad_byte, "%s: NUL, backslash or control in '%s'", label, show(out, n));
    CHECK(ref_utf8_valid((const unsigned char *)out, n), "%s: invalid UTF-8 in result", label);
    /* no empty, "." or ".." segment anywhere, the final one included */
    size_t seg = 1;
    for (size_t i = 1; i <= n; ++i) {
        if (i == n || out[i] == '/') {
            size_t sl = i - seg;
            int dot = (sl == 1 && out[seg] == '.') || (sl == 2 && out[seg] == '.' && out[seg + 1] == '.');
            CHECK(!dot, "%s: dot segment left in '%s'", label, show(out, n));
            CHECK(sl > 0 || i == n, "%s: empty segment ('//') in '%s'", label, show(out, n));
            seg = i + 1;
        }
    }
    /* without a '%' left to decode, normalising again changes nothing */
    if (!has_percent) {
        char again[REF_MAX + 1];
        if (n <= REF_MAX) {
            long rc2 = normalize_checked(out, n, again, label);
            CHECK(rc2 == rc && memcmp(again, out, n) == 0, "%s: not idempotent: '%s' -> %ld", label,
                  show(out, n), rc2);
        }
    }
}

typedef struct {
    const char *in;
    size_t len; /* 0: strlen(in) */
    long error; /* 0: success, giving `out` */
    const char *out;
} path_case_t;

#define PATH_OK(in, out) {in, 0, 0, out}
#define PATH_ERR(in, e) {in, 0, e, NULL}
#define PATH_ERR_N(in, e) {in, sizeof(in) - 1, e, NULL} /* with a NUL inside */

static const path_case_t path_cases[] = {
    /* plain paths and dot segments */
    PATH_OK("/", "/"),
    PATH_OK("/a", "/a"),
    PATH_OK("/a/b", "/a/b"),
    PATH_OK("/a/b/", "/a/b/"),
    PATH_OK("/a/./b", "/a/b"),
    PATH_OK("/a/b/..", "/a/"),
    PATH_OK("/a/b/../", "/a/"),
    PATH_OK("/a/.", "/a/"),
    PATH_OK("/a/./", "/a/"),
    PATH_OK("/.", "/"),
    PATH_OK("/./", "/"),
    PATH_OK("/./.", "/"),
    PATH_OK("/a/..", "/"),
    PATH_OK("/a/../", "/"),
    PATH_OK("/a/b/c/../../d", "/a/d"),
    PATH_OK("/a/b/c/./../d/.", "/a/b/d/"),
    PATH_OK("/a/b/../../c", "/c"),
    PATH_OK("/a/./././b/./", "/a/b/"),
    /* repeated slashes collapse, before ".." is resolved */
    PATH_OK("//", "/"),
    PATH_OK("///a///b///", "/a/b/"),
    PATH_OK("/a//b", "/a/b"),
    PATH_OK("/a//..", "/"),
    PATH_OK("/a/b//../c", "/a/c"),
    /* names that only look like dot segments */
    PATH_OK("/...", "/..."),
    PATH_OK("/..a", "/..a"),
    PATH_OK("/a..", "/a.."),
    PATH_OK("/.a", "/.a"),
    PATH_OK("/a/.../..", "/a/"),
    PATH_OK("/.git/config", "/.git/config"),
    PATH_OK("/. /", "/. /"),
    /* percent-decoding, then dot segments */
    PATH_OK("/%41", "/A"),
    PATH_OK("/%61%62c", "/abc"),
    PATH_OK("/%2e", "/"),
    PATH_OK("/%2E/", "/"),
    PATH_OK("/a/%2e%2E", "/"),
    PATH_OK("/a/b/%2e%2e/c", "/a/c"),
    PATH_OK("/a/%2E/b", "/a/b"),
    PATH_OK("/%2e%2e%2e", "/..."),
    PATH_OK("/%2egit/config", "/.git/config"),
    PATH_OK("/%25", "/%"),
    PATH_OK("/%252e%252e/", "/%2e%2e/"),
    PATH_OK("/%252f", "/%2f"),
    PATH_OK("/%255c", "/%5c"),
    PATH_OK("/a?b", "/a?b"),
    PATH_OK("/a%3Fb", "/a?b"),
    PATH_OK("/a#b", "/a#b"),
    PATH_OK("/a b", "/a b"),
    PATH_OK("/%20", "/ "),
    PATH_OK("/a;b=c,d", "/a;b=c,d"),
    PATH_OK("/%7e%7E", "/~~"),
    /* UTF-8, encoded, raw, and mixed */
    PATH_OK("/%c3%a9", "/\xc3\xa9"),
    PATH_OK("/%C3%A9", "/\xc3\xa9"),
    PATH_OK("/\xc3\xa9", "/\xc3\xa9"),
    PATH_OK("/%C3\xa9", "/\xc3\xa9"),
    PATH_OK("/%c2%80", "/\xc2\x80"),
    PATH_OK("/%df%bf", "/\xdf\xbf"),
    PATH_OK("/%e0%a0%80", "/\xe0\xa0\x80"),
    PATH_OK("/%e2%82%ac", "/\xe2\x82\xac"),
    PATH_OK("/%ed%9f%bf", "/\xed\x9f\xbf"),
    PATH_OK("/%ee%80%80", "/\xee\x80\x80"),
    PATH_OK("/%ef%bf%bf", "/\xef\xbf\xbf"),
    PATH_OK("/%f0%90%80%80", "/\xf0\x90\x80\x80"),
    PATH_OK("/%f0%9f%98%80", "/\xf0\x9f\x98\x80"),
    PATH_OK("/%f4%8f%bf%bf", "/\xf4\x8f\xbf\xbf"),
    PATH_OK("/caf%C3%A9/../x", "/x"),
    /* not absolute */
    PATH_ERR("", FC_PATH_NOT_ABSOLUTE),
    PATH_ERR("a", FC_PATH_NOT_ABSOLUTE),
    PATH_ERR("a/b", FC_PATH_NOT_ABSOLUTE),
    PATH_ERR(".", FC_PATH_NOT_ABSOLUTE),
    PATH_ERR("..", FC_PATH_NOT_ABSOLUTE),
    PATH_ERR("../etc/passwd", FC_PATH_NOT_ABSOLUTE),
    PATH_ERR("%2f", FC_PATH_NOT_ABSOLUTE),
    PATH_ERR("%2fetc", FC_PATH_NOT_ABSOLUTE),
    PATH_ERR("\\a", FC_PATH_NOT_ABSOLUTE),
    PATH_ERR(" /a", FC_PATH_NOT_ABSOLUTE),
    PATH_ERR("http://h/a", FC_PATH_NOT_ABSOLUTE),
    /* climbing above the root */
    PATH_ERR("/..", FC_PATH_ESCAPES_ROOT),
    PATH_ERR("/../", FC_PATH_ESCAPES_ROOT),
    PATH_ERR("/../x", FC_PATH_ESCAPES_ROOT),
    PATH_ERR("/../../../../etc/passwd", FC_PATH_ESCAPES_ROOT),
    PATH_ERR("/%2e%2e/etc/passwd", FC_PATH_ESCAPES_ROOT),
    PATH_ERR("/%2E%2E/etc/passwd", FC_PATH_ESCAPES_ROOT),
    PATH_ERR("/.%2e/x", FC_PATH_ESCAPES_ROOT),
    PATH_ERR("/%2e./x", FC_PATH_ESCAPES_ROOT),
    PATH_ERR("/a/../..", FC_PATH_ESCAPES_ROOT),
    PATH_ERR("/a/%2e%2E/..", FC_PATH_ESCAPES_ROOT),
    PATH_ERR("/./../x", FC_PATH_ESCAPES_ROOT),
    PATH_ERR("//../x", FC_PATH_ESCAPES_ROOT),
    PATH_ERR("/a/b/../../../etc", FC_PATH_ESCAPES_ROOT),
    PATH_ERR("/a/./../../x", FC_PATH_ESCAPES_ROOT),
    PATH_ERR("/static/../../secret", FC_PATH_ESCAPES_ROOT),
    /* encoded slash */
    PATH_ERR("/..%2f", FC_PATH_ENCODED_SLASH),
    PATH_ERR("/..%2F", FC_PATH_ENCODED_SLASH),
    PATH_ERR("/..%2f..%2fetc%2fpasswd", FC_PATH_ENCODED_SLASH),
    PATH_ERR("/a%2fb", FC_PATH_ENCODED_SLASH),
    PATH_ERR("/%2f", FC_PATH_ENCODED_SLASH),
    PATH_ERR("/%2F%2F", FC_PATH_ENCODED_SLASH),
    /* backslash */
    PATH_ERR("/a\\b", FC_PATH_BACKSLASH),
    PATH_ERR("/..\\x", FC_PATH_BACKSLASH),
    PATH_ERR("/\\..\\..\\windows", FC_PATH_BACKSLASH),
    PATH_ERR("/%5c", FC_PATH_BACKSLASH),
    PATH_ERR("/%5C", FC_PATH_BACKSLASH),
    PATH_ERR("/..%5c..%5cwindows", FC_PATH_BACKSLASH),
    PATH_ERR("/..%5C", FC_PATH_BACKSLASH),
    /* malformed escapes */
    PATH_ERR("/%", FC_PATH_BAD_ESCAPE),
    PATH_ERR("/a%", FC_PATH_BAD_ESCAPE),
    PATH_ERR("/%z", FC_PATH_BAD_ESCAPE),
    PATH_ERR("/%zz", FC_PATH_BAD_ESCAPE),
    PATH_ERR("/%0", FC_PATH_BAD_ESCAPE),
    PATH_ERR("/%0g", FC_PATH_BAD_ESCAPE),
    PATH_ERR("/%g0", FC_PATH_BAD_ESCAPE),
    PATH_ERR("/% 1", FC_PATH_BAD_ESCAPE),
    PATH_ERR("/%%41", FC_PATH_BAD_ESCAPE),
    PATH_ERR("/%+1", FC_PATH_BAD_ESCAPE),
    PATH_ERR("/%-1", FC_PATH_BAD_ESCAPE),
    PATH_ERR("/%2", FC_PATH_BAD_ESCAPE),
    PATH_ERR("/%2e%2", FC_PATH_BAD_ESCAPE),
    PATH_ERR("/%\xc3\xa9", FC_PATH_BAD_ESCAPE),
    /* NUL */
    PATH_ERR("/%00", FC_PATH_NUL),
    PATH_ERR("/a%00.txt", FC_PATH_NUL),
    PATH_ERR_N("/a\0b", FC_PATH_NUL),
    PATH_ERR_N("/\0", FC_PATH_NUL),
    PATH_ERR("/%c3%00", FC_PATH_NUL),
    /* control characters */
    PATH_ERR("/%01", FC_PATH_CONTROL),
    PATH_ERR("/%09", FC_PATH_CONTROL),
    PATH_ERR("/%0a", FC_PATH_CONTROL),
    PATH_ERR("/%0D%0A", FC_PATH_CONTROL),
    PATH_ERR("/%1f", FC_PATH_CONTROL),
    PATH_ERR("/%7f", FC_PATH_CONTROL),
    PATH_ERR("/%7F", FC_PATH_CONTROL),
    PATH_ERR("/a\tb", FC_PATH_CONTROL),
    PATH_ERR("/a\nb", FC_PATH_CONTROL),
    PATH_ERR("/a\rb", FC_PATH_CONTROL),
    PATH_ERR("/\x7f", FC_PATH_CONTROL),
    PATH_ERR("/\x1b[31m", FC_PATH_CONTROL),
    /* invalid UTF-8: overlong forms */
    PATH_ERR("/%c0%ae%c0%ae/", FC_PATH_BAD_UTF8),
    PATH_ERR("/%c0%ae%c0%ae/etc/passwd", FC_PATH_BAD_UTF8),
    PATH_ERR("/%c0%af", FC_PATH_BAD_UTF8),
    PATH_ERR("/%C0%AF", FC_PATH_BAD_UTF8),
    PATH_ERR("/%c1%9c", FC_PATH_BAD_UTF8),
    PATH_ERR("/%c1%bf", FC_PATH_BAD_UTF8),
    PATH_ERR("/%e0%80%ae", FC_PATH_BAD_UTF8),
    PATH_ERR("/%e0%80%af", FC_PATH_BAD_UTF8),
    PATH_ERR("/%e0%9f%bf", FC_PATH_BAD_UTF8),
    PATH_ERR("/%f0%80%80%ae", FC_PATH_BAD_UTF8),
    PATH_ERR("/%f0%8f%bf%bf", FC_PATH_BAD_UTF8),
    PATH_ERR("/\xc0\xae\xc0\xae/", FC_PATH_BAD_UTF8),
    /* invalid UTF-8: surrogates, past U+10FFFF, bad leads */
    PATH_ERR("/%ed%a0%80", FC_PATH_BAD_UTF8),
    PATH_ERR("/%ed%bf%bf", FC_PATH_BAD_UTF8),
    PATH_ERR("/%ED%B0%80", FC_PATH_BAD_UTF8),
    PATH_ERR("/%f4%90%80%80", FC_PATH_BAD_UTF8),
    PATH_ERR("/%f5%80%80%80", FC_PATH_BAD_UTF8),
    PATH_ERR("/%f8%88%80%80%80", FC_PATH_BAD_UTF8),
    PATH_ERR("/%fe", FC_PATH_BAD_UTF8),
    PATH_ERR("/%ff", FC_PATH_BAD_UTF8),
    /* invalid UTF-8: stray, missing and interrupted continuation bytes */
    PATH_ERR("/%80", FC_PATH_BAD_UTF8),
    PATH_ERR("/%bf", FC_PATH_BAD_UTF8),
    PATH_ERR("/\x80", FC_PATH_BAD_UTF8),
    PATH_ERR("/a%c3", FC_PATH_BAD_UTF8),
    PATH_ERR("/%c3/", FC_PATH_BAD_UTF8),
    PATH_ERR("/%c3%28", FC_PATH_BAD_UTF8),
    PATH_ERR("/%c3.", FC_PATH_BAD_UTF8),
    PATH_ERR("/%e2%82", FC_PATH_BAD_UTF8),
    PATH_ERR("/%e2%82/", FC_PATH_BAD_UTF8),
    PATH_ERR("/%f0%9f%98", FC_PATH_BAD_UTF8),
    PATH_ERR("/%c3%a9%a9", FC_PATH_BAD_UTF8),
    PATH_ERR("/\xc3", FC_PATH_BAD_UTF8),
    /* the first problem, reading left to right */
    PATH_ERR("/../%00", FC_PATH_ESCAPES_ROOT),
    PATH_ERR("/%00/../..", FC_PATH_NUL),
    PATH_ERR("/%2f/%5c", FC_PATH_ENCODED_SLASH),
    PATH_ERR("/%5c/%2f", FC_PATH_BACKSLASH),
    PATH_ERR("/%zz/..", FC_PATH_BAD_ESCAPE),
};

static void test_path_normalize_cases(void)
{
    static char out[4096];
    for (size_t i = 0; i < COUNT(path_cases); ++i) {
        const path_case_t *c = &path_cases[i];
        size_t len = c->len ? c->len : strlen(c->in);
        char label[600];
        snprintf(label, sizeof(label), "normalize[%zu] '%s'", i, show(c->in, len));
        ++cases;
        long rc = normalize_checked(c->in, len, out, label);
        if (c->error == 0)
            CHECK(rc == (long)strlen(c->out) && memcmp(out, c->out, (size_t)rc) == 0, "%s: got %ld '%s', want '%s'",
                  label, rc, rc > 0 ? show(out, (size_t)rc) : "", show(c->out, strlen(c->out)));
        else
            CHECK(rc == c->error, "%s: got %ld, want %ld", label, rc, c->error);
        check_path_result(c->in, len, rc, out, label);
        /* every prefix, on guarded copies: no over-read, invariants hold */
        for (size_t n = 0; n < len; ++n) {
            long prc = normalize_checked(c->in, n, out, label);
            check_path_result(c->in, n, prc, out, label);
        }
    }
}

static void test_path_normalize_long(void)
{
    /* a deep path, all popped; and one byte short of escaping */
    static char in[3 * 200 + 4 * 200 + 1], out[sizeof(in)];
    size_t n = 0;
    for (int k = 0; k < 200; ++k) {
        memcpy(in + n, "/ab", 3);
        n += 3;
    }
    for (int k = 0; k < 200; ++k) {
        memcpy(in + n, "/..", 3);
        n += 3;
    }
    ++cases;
    long rc = normalize_checked(in, n, out, "deep");
    CHECK(rc == 1 && out[0] == '/', "deep: rc %ld", rc);
    memcpy(in + n, "/..", 3);
    rc = normalize_checked(in, n + 3, out, "deep escape");
    CHECK(rc == FC_PATH_ESCAPES_ROOT, "deep escape: rc %ld", rc);

    /* only slashes: collapses to one */
    memset(in, '/', 500);
    ++cases;
    rc = normalize_checked(in, 500, out, "slashes");
    CHECK(rc == 1, "slashes: rc %ld", rc);

    /* the result as long as the input: exactly-sized buffers are full */
    for (size_t k = 0; k < 300; ++k)
        in[k] = k == 0 ? '/' : (char)('a' + k % 26);
    ++cases;
    rc = normalize_checked(in, 300, out, "full");
    CHECK(rc == 300 && memcmp(in, out, 300) == 0, "full: rc %ld", rc);
    in[299] = '/';
    rc = normalize_checked(in, 300, out, "full with slash");
    CHECK(rc == 300 && memcmp(in, out, 300) == 0, "full with slash: rc %ld", rc);
}

typedef struct {
    const char *in;
    int want;
} dotfile_case_t;

static void test_path_has_dotfile(void)
{
    static const dotfile_case_t dot_cases[] = {
        {"/a/.git/x", 1}, {"/.env", 1},    {"/.", 1},      {"/a/..b", 1},  {"/a/b/.", 1}, {".x", 1},
        {"/.well-known/a", 1},              {"/a/b", 0},    {"/a.b/c", 0},  {"/a/b.", 0},  {"/", 0},
        {"", 0},          {"/a/b..", 0},   {"/a./b", 0},   {"a", 0},
    };
    for (size_t i = 0; i < COUNT(dot_cases); ++i) {
        size_t len = strlen(dot_cases[i].in);
        guarded_t g = guarded_copy(dot_cases[i].in, len);
        int rc = fc_path_has_dotfile(g.data, len);
        guarded_free(g);
        ++cases;
        CHECK(rc == dot_cases[i].want, "dotfile '%s': %d", dot_cases[i].in, rc);
    }
    /* normalise first: an encoded dot is a dot */
    char out[64];
    long rc = fc_path_normalize("/%2egit/config", 14, out);
    ++cases;
    CHECK(rc > 0 && fc_path_has_dotfile(out, (size_t)rc) == 1, "dotfile after decoding: %ld", rc);
}

/* ======================================================================== */
/* HTTP-date                                                                */
/* ======================================================================== */

#define DATE_MIN INT64_C(-62167219200) /* 0000-01-01 00:00:00 */
#define DATE_MAX INT64_C(253402300799) /* 9999-12-31 23:59:59 */
#define BAD_DATE INT64_MIN

typedef struct {
    const char *in;
    size_t len; /* 0: strlen(in) */
    int64_t want; /* BAD_DATE: -1 expected */
} date_case_t;

static const date_case_t date_cases[] = {
    /* the three formats of RFC 9110 5.6.7 */
    {"Sun, 06 Nov 1994 08:49:37 GMT", 0, 784111777},
    {"Sunday, 06-Nov-94 08:49:37 GMT", 0, 784111777},
    {"Sun Nov  6 08:49:37 1994", 0, 784111777},
    {"Sun Nov 06 08:49:37 1994", 0, 784111777},
    /* optional whitespace around the value */
    {"  Sun, 06 Nov 1994 08:49:37 GMT \t", 0, 784111777},
    {"\tSunday, 06-Nov-94 08:49:37 GMT ", 0, 784111777},
    {" Sun Nov  6 08:49:37 1994\t", 0, 784111777},
    /* the day name need not agree with the date */
    {"Mon, 06 Nov 1994 08:49:37 GMT", 0, 784111777},
    {"Saturday, 06-Nov-94 08:49:37 GMT", 0, 784111777},
    {"Wed Nov  6 08:49:37 1994", 0, 784111777},
    /* edges */
    {"Thu, 01 Jan 1970 00:00:00 GMT", 0, 0},
    {"Wed, 31 Dec 1969 23:59:59 GMT", 0, -1},
    {"Tue, 29 Feb 2000 00:00:00 GMT", 0, 951782400},
    {"Sat, 29 Feb 2020 12:00:00 GMT", 0, 1582977600},
    {"Thu, 29 Feb 2024 00:00:00 GMT", 0, 1709164800},
    {"Tue, 29 Feb 1600 00:00:00 GMT", 0, INT64_C(-11670998400)},
    {"Thu, 01 Mar 1900 00:00:00 GMT", 0, INT64_C(-2203891200)},
    {"Mon, 01 Mar 2100 00:00:00 GMT", 0, INT64_C(4107542400)},
    {"Tue, 19 Jan 2038 03:14:08 GMT", 0, INT64_C(2147483648)},
    {"Fri, 31 Dec 9999 23:59:59 GMT", 0, DATE_MAX},
    {"Sat, 01 Jan 0000 00:00:00 GMT", 0, DATE_MIN},
    {"Sun, 06 Nov 1994 08:49:60 GMT", 0, 784111799}, /* leap second read as :59 */
    {"Sun, 06 Nov 1994 23:59:59 GMT", 0, 784166399},
    /* RFC 850 two-digit years: 70-99 are 19xx, 00-69 are 20xx */
    {"Thursday, 01-Jan-70 00:00:00 GMT", 0, 0},
    {"Friday, 31-Dec-99 23:59:59 GMT", 0, 946684799},
    {"Saturday, 01-Jan-00 00:00:00 GMT", 0, 946684800},
    {"Tuesday, 01-Jan-69 00:00:00 GMT", 0, INT64_C(3124224000)},
    {"Wednesday, 29-Feb-00 00:00:00 GMT", 0, 951782400},
    {"Thu Jan  1 00:00:00 1970", 0, 0},
    {"Thu Feb 29 00:00:00 2024", 0, 1709164800},
    /* invalid: empty, garbage around */
    {"", 0, BAD_DATE},
    {"   ", 0, BAD_DATE},
    {"Sun", 0, BAD_DATE},
    {"Sun,", 0, BAD_DATE},
    {"Sun, ", 0, BAD_DATE},
    {"Sunday", 0, BAD_DATE},
    {"Sun Nov", 0, BAD_DATE},
    {"Sun, 06 Nov 1994 08:49:37 GMT x", 0, BAD_DATE},
    {"Sun, 06 Nov 1994 08:49:37 GMTx", 0, BAD_DATE},
    {"Sun, 06 Nov 1994 08:49:37 GMT,", 0, BAD_DATE},
    {"Sun, 06 Nov 1994 08:49:37 GMT\r\n", 0, BAD_DATE},
    {"Sun, 06 Nov 1994 08:49:37 GMT\0", sizeof("Sun, 06 Nov 1994 08:49:37 GMT\0") - 1, BAD_DATE},
    {"x Sun, 06 Nov 1994 08:49:37 GMT", 0, BAD_DATE},
    {"Sun Nov  6 08:49:37 1994 GMT", 0, BAD_DATE},
    {"Sun Nov  6 08:49:37 19945", 0, BAD_DATE},
    /* invalid: names (case-sensitive, the right length for the format) */
    {"sun, 06 Nov 1994 08:49:37 GMT", 0, BAD_DATE},
    {"SUN, 06 Nov 1994 08:49:37 GMT", 0, BAD_DATE},
    {"Sun, 06 nov 1994 08:49:37 GMT", 0, BAD_DATE},
    {"Sun, 06 NOV 1994 08:49:37 GMT", 0, BAD_DATE},
    {"Sun, 06 Nov 1994 08:49:37 gmt", 0, BAD_DATE},
    {"Sun, 06 Nov 1994 08:49:37 UTC", 0, BAD_DATE},
    {"Sun, 06 Nov 1994 08:49:37 +0000", 0, BAD_DATE},
    {"Xyz, 06 Nov 1994 08:49:37 GMT", 0, BAD_DATE},
    {"Sund, 06 Nov 1994 08:49:37 GMT", 0, BAD_DATE},
    {"Su, 06 Nov 1994 08:49:37 GMT", 0, BAD_DATE},
    {"Sun, 06 Nox 1994 08:49:37 GMT", 0, BAD_DATE},
    {"Sunday, 06 Nov 1994 08:49:37 GMT", 0, BAD_DATE},
    {"Sun, 06-Nov-94 08:49:37 GMT", 0, BAD_DATE},
    {"sunday, 06-Nov-94 08:49:37 GMT", 0, BAD_DATE},
    {"Sunda, 06-Nov-94 08:49:37 GMT", 0, BAD_DATE},
    {"Sunday Nov  6 08:49:37 1994", 0, BAD_DATE},
    {"Sun,Nov  6 08:49:37 1994", 0, BAD_DATE},
    /* invalid: field widths and separators */
    {"Sun, 6 Nov 1994 08:49:37 GMT", 0, BAD_DATE},
    {"Sun, 06 Nov 94 08:49:37 GMT", 0, BAD_DATE},
    {"Sun, 06 Nov 01994 08:49:37 GMT", 0, BAD_DATE},
    {"Sun,06 Nov 1994 08:49:37 GMT", 0, BAD_DATE},
    {"Sun,  06 Nov 1994 08:49:37 GMT", 0, BAD_DATE},
    {"Sun, 06  Nov 1994 08:49:37 GMT", 0, BAD_DATE},
    {"Sun, 06 Nov 1994  08:49:37 GMT", 0, BAD_DATE},
    {"Sun, 06 Nov 1994 08:49:37  GMT", 0, BAD_DATE},
    {"Sun, 06 Nov 1994 08:49:37\tGMT", 0, BAD_DATE},
    {"Sun,\t06 Nov 1994 08:49:37 GMT", 0, BAD_DATE},
    {"Sun, 06 Nov 1994 8:49:37 GMT", 0, BAD_DATE},
    {"Sun, 06 Nov 1994 08:49 GMT", 0, BAD_DATE},
    {"Sun, 06 Nov 1994 08:49:37.5 GMT", 0, BAD_DATE},
    {"Sun, 06 Nov 1994 08.49.37 GMT", 0, BAD_DATE},
    {"Sun, 06 Nov 1994 08:49:3a GMT", 0, BAD_DATE},
    {"Sun, -6 Nov 1994 08:49:37 GMT", 0, BAD_DATE},
    {"Sun, +6 Nov 1994 08:49:37 GMT", 0, BAD_DATE},
    {"Sun, 06 Nov +994 08:49:37 GMT", 0, BAD_DATE},
    {"Sun, 06 Nov 1994 08:49:37 GMT GMT", 0, BAD_DATE},
    {"Sunday, 06-Nov-1994 08:49:37 GMT", 0, BAD_DATE},
    {"Sunday, 06-Nov-94 08:49:37", 0, BAD_DATE},
    {"Sunday, 06 Nov 94 08:49:37 GMT", 0, BAD_DATE},
    {"Sunday, 6-Nov-94 08:49:37 GMT", 0, BAD_DATE},
    {"Sun Nov 6 08:49:37 1994", 0, BAD_DATE},
    {"Sun Nov   6 08:49:37 1994", 0, BAD_DATE},
    {"Sun Nov  6 08:49:37 94", 0, BAD_DATE},
    {"Sun  Nov  6 08:49:37 1994", 0, BAD_DATE},
    {"Sun Nov  6  08:49:37 1994", 0, BAD_DATE},
    {"Sun Nov 6  08:49:37 1994", 0, BAD_DATE},
    /* invalid: ranges */
    {"Sun, 00 Nov 1994 08:49:37 GMT", 0, BAD_DATE},
    {"Sun, 31 Nov 1994 08:49:37 GMT", 0, BAD_DATE},
    {"Sun, 32 Jan 1994 08:49:37 GMT", 0, BAD_DATE},
    {"Sun, 29 Feb 1900 00:00:00 GMT", 0, BAD_DATE},
    {"Sun, 29 Feb 2023 00:00:00 GMT", 0, BAD_DATE},
    {"Sun, 29 Feb 2100 00:00:00 GMT", 0, BAD_DATE},
    {"Sun, 30 Feb 2000 00:00:00 GMT", 0, BAD_DATE},
    {"Sun, 31 Apr 1994 00:00:00 GMT", 0, BAD_DATE},
    {"Sun, 31 Jun 1994 00:00:00 GMT", 0, BAD_DATE},
    {"Sun, 31 Sep 1994 00:00:00 GMT", 0, BAD_DATE},
    {"Sun, 06 Nov 1994 24:00:00 GMT", 0, BAD_DATE},
    {"Sun, 06 Nov 1994 08:60:00 GMT", 0, BAD_DATE},
    {"Sun, 06 Nov 1994 08:49:61 GMT", 0, BAD_DATE},
    {"Sun, 06 Nov 1994 99:99:99 GMT", 0, BAD_DATE},
    {"Sunday, 29-Feb-01 00:00:00 GMT", 0, BAD_DATE},
    {"Sunday, 00-Jan-94 00:00:00 GMT", 0, BAD_DATE},
    {"Sun Nov  0 08:49:37 1994", 0, BAD_DATE},
    {"Sun Feb 30 08:49:37 1994", 0, BAD_DATE},
    {"Sun Nov  6 24:49:37 1994", 0, BAD_DATE},
    /* invalid: bytes outside ASCII */
    {"Sun, 06 Nov 1994 08:49:37 GMT\xc2\xa0", 0, BAD_DATE},
    {"\xff\xfe\xfd, 06 Nov 1994 08:49:37 GMT", 0, BAD_DATE},
};

static int date_parse_guarded(const char *in, size_t len, int64_t *t)
{
    guarded_t g = guarded_copy(in, len);
    int rc = fc_http_date_parse(g.data, len, t);
    guarded_free(g);
    return rc;
}

static void date_format_guarded(int64_t t, char *text)
{
    guarded_t g = guarded_alloc(FC_HTTP_DATE_LEN + 1);
    int rc = fc_http_date_format(t, g.data);
    CHECK(rc == FC_HTTP_DATE_LEN && g.data[FC_HTTP_DATE_LEN] == '\0', "format %lld: rc %d",
          (long long)t, rc);
    memcpy(text, g.data, FC_HTTP_DATE_LEN + 1);
    guarded_free(g);
}

static void test_date_parse_cases(void)
{
    for (size_t i = 0; i < COUNT(date_cases); ++i) {
        const date_case_t *c = &date_cases[i];
        size_t len = c->len ? c->len : strlen(c->in);
        int64_t t = 12345;
        ++cases;
        int rc = date_parse_guarded(c->in, len, &t);
        if (c->want == BAD_DATE)
            CHECK(rc == -1, "date[%zu] '%s': rc %d t %lld, want -1", i, show(c->in, len), rc, (long long)t);
        else
            CHECK(rc == 0 && t == c->want, "date[%zu] '%s': rc %d t %lld, want %lld", i, show(c->in, len), rc,
                  (long long)t, (long long)c->want);
        /* prefixes: none may over-read; a prefix of a valid date parses
         * only when what is cut off is trailing whitespace */
        for (size_t n = 0; n < len; ++n) {
            int64_t pt;
            int prc = date_parse_guarded(c->in, n, &pt);
            CHECK(prc == -1 || (prc == 0 && (c->want == BAD_DATE || pt == c->want)), "date[%zu] prefix %zu: rc %d",
                  i, n, prc);
        }
    }
}

static void test_date_format_known(void)
{
    static const struct {
        int64_t t;
        const char *text;
    } known[] = {
        {784111777, "Sun, 06 Nov 1994 08:49:37 GMT"},
        {0, "Thu, 01 Jan 1970 00:00:00 GMT"},
        {-1, "Wed, 31 Dec 1969 23:59:59 GMT"},
        {951782400, "Tue, 29 Feb 2000 00:00:00 GMT"},
        {INT64_C(2147483647), "Tue, 19 Jan 2038 03:14:07 GMT"},
        {INT64_C(4107542400), "Mon, 01 Mar 2100 00:00:00 GMT"},
        {INT64_C(-2203891200), "Thu, 01 Mar 1900 00:00:00 GMT"},
        {DATE_MAX, "Fri, 31 Dec 9999 23:59:59 GMT"},
        {DATE_MIN, "Sat, 01 Jan 0000 00:00:00 GMT"},
        /* clamped to what four year digits can spell */
        {DATE_MAX + 1, "Fri, 31 Dec 9999 23:59:59 GMT"},
        {INT64_MAX, "Fri, 31 Dec 9999 23:59:59 GMT"},
        {DATE_MIN - 1, "Sat, 01 Jan 0000 00:00:00 GMT"},
        {INT64_MIN, "Sat, 01 Jan 0000 00:00:00 GMT"},
    };
    char text[FC_HTTP_DATE_LEN + 1];
    for (size_t i = 0; i < COUNT(known); ++i) {
        ++cases;
        date_format_guarded(known[i].t, text);
        CHECK(strcmp(text, known[i].text) == 0, "format %lld: '%s', want '%s'", (long long)known[i].t, text,
              known[i].text);
    }
}

/* A naive calendar walked one day at a time, independent of the code under
 * test: every day of 1970-2100 is formatted, parsed in all three formats
 * (RFC 850 where its two-digit year reads back), at several times of day;
 * the rest of 0000-9999 is sampled. */
static void test_date_calendar(void)
{
    static const char *const wdays[7] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const wdays_long[7] = {"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
                                              "Saturday"};
    static const char *const months[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    static const int times[] = {0, 1, 59, 3599, 43200, 45296, 86399};
    int y = 0, m = 1, d = 1, wday = 6; /* 0000-01-01 was a Saturday */
    int64_t day = DATE_MIN / 86400;
    long checked_days = 0;
    char want[64], got[FC_HTTP_DATE_LEN + 1], alt[64];

    for (;; ++day) {
        int every = y >= 1970 && y <= 2100;
        if (every || day % 53 == 0) {
            ++checked_days;
            size_t pick = (size_t)(day - DATE_MIN / 86400) % COUNT(times);
            for (size_t k = 0; k < COUNT(times); ++k) {
                if (!every && k != pick)
                    continue;
                int s = times[k];
                int64_t t = day * 86400 + s;
                snprintf(want, sizeof(want), "%s, %02d %s %04d %02d:%02d:%02d GMT", wdays[wday], d, months[m - 1],
                         y, s / 3600, s / 60 % 60, s % 60);
                fc_http_date_format(t, got);
                CHECK(strcmp(got, want) == 0, "calendar %lld: '%s', want '%s'", (long long)t, got, want);
                int64_t back = 0;
                CHECK(fc_http_date_parse(want, strlen(want), &back) == 0 && back == t,
                      "calendar parse '%s': %lld, want %lld", want, (long long)back, (long long)t);
                snprintf(alt, sizeof(alt), "%s %s %2d %02d:%02d:%02d %04d", wdays[wday], months[m - 1], d, s / 3600,
                         s / 60 % 60, s % 60, y);
                CHECK(fc_http_date_parse(alt, strlen(alt), &back) == 0 && back == t,
                      "calendar asctime '%s': %lld, want %lld", alt, (long long)back, (long long)t);
                if (y >= 1970 && y <= 2069) {
                    snprintf(alt, sizeof(alt), "%s, %02d-%s-%02d %02d:%02d:%02d GMT", wdays_long[wday], d,
                             months[m - 1], y % 100, s / 3600, s / 60 % 60, s % 60);
                    CHECK(fc_http_date_parse(alt, strlen(alt), &back) == 0 && back == t,
                          "calendar rfc850 '%s': %lld, want %lld", alt, (long long)back, (long long)t);
                }
            }
        }
        /* the next day, the slow way */
        int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        int mdays = m == 2 ? 28 + leap : (m == 4 || m == 6 || m == 9 || m == 11) ? 30 : 31;
        wday = (wday + 1) % 7;
        if (++d > mdays) {
            d = 1;
            if (++m > 12) {
                m = 1;
                if (++y > 9999)
                    break;
            }
        }
    }
    CHECK((day + 1) * 86400 - 1 == DATE_MAX, "calendar ended on day %lld", (long long)day);
    printf("  dates: %ld days checked against a naive calendar\n", checked_days);
}

/* libc's gmtime_r as a second reference for random instants */
static void test_date_gmtime(void)
{
    static const char *const wdays[7] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    char want[64], got[FC_HTTP_DATE_LEN + 1];
    if (sizeof(time_t) < 8)
        return;
    for (int k = 0; k < 20000; ++k) {
        uint64_t r = (uint64_t)rng() << 32 | rng();
        int64_t t = DATE_MIN + (int64_t)(r % (uint64_t)(DATE_MAX - DATE_MIN + 1));
        time_t tt = (time_t)t;
        struct tm tm;
        if (!gmtime_r(&tt, &tm))
            continue;
        snprintf(want, sizeof(want), "%s, %02d %s %04lld %02d:%02d:%02d GMT", wdays[tm.tm_wday], tm.tm_mday,
                 months[tm.tm_mon], (long long)tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
        fc_http_date_format(t, got);
        CHECK(strcmp(got, want) == 0, "gmtime %lld: '%s', want '%s'", (long long)t, got, want);
        int64_t back;
        CHECK(fc_http_date_parse(got, FC_HTTP_DATE_LEN, &back) == 0 && back == t, "gmtime round trip %lld",
              (long long)t);
    }
}

/* ======================================================================== */
/* Range                                                                    */
/* ======================================================================== */

#define U63 UINT64_C(9223372036854775808)

typedef struct {
    const char *in;
    uint64_t size;
    int max;
    int want;
    fc_range_t ranges[4];
} range_case_t;

#define IGN FC_RANGE_IGNORE

static const range_case_t range_cases[] = {
    /* RFC 9110 14.1.2 examples, size 10000 */
    {"bytes=0-499", 10000, 8, 1, {{0, 499}}},
    {"bytes=500-999", 10000, 8, 1, {{500, 999}}},
    {"bytes=-500", 10000, 8, 1, {{9500, 9999}}},
    {"bytes=9500-", 10000, 8, 1, {{9500, 9999}}},
    {"bytes=0-0,-1", 10000, 8, 2, {{0, 0}, {9999, 9999}}},
    {"bytes=0-999,4500-5499,-1000", 10000, 8, 3, {{0, 999}, {4500, 5499}, {9000, 9999}}},
    {"bytes=500-600,601-999", 10000, 8, 2, {{500, 600}, {601, 999}}},
    {"bytes=500-700,601-999", 10000, 8, 2, {{500, 700}, {601, 999}}},
    /* the unit name is case-insensitive */
    {"Bytes=0-1", 10, 8, 1, {{0, 1}}},
    {"BYTES=0-1", 10, 8, 1, {{0, 1}}},
    {"bYtEs=0-1", 10, 8, 1, {{0, 1}}},
    /* clipping, suffixes, unsatisfiable members */
    {"bytes=0-999999", 100, 8, 1, {{0, 99}}},
    {"bytes=-200", 100, 8, 1, {{0, 99}}},
    {"bytes=-100", 100, 8, 1, {{0, 99}}},
    {"bytes=-99", 100, 8, 1, {{1, 99}}},
    {"bytes=-1", 1, 8, 1, {{0, 0}}},
    {"bytes=0-", 1, 8, 1, {{0, 0}}},
    {"bytes=99-", 100, 8, 1, {{99, 99}}},
    {"bytes=99-99", 100, 8, 1, {{99, 99}}},
    {"bytes=5-5", 10, 8, 1, {{5, 5}}},
    {"bytes=100-", 100, 8, 0, {{0, 0}}},
    {"bytes=100-200", 100, 8, 0, {{0, 0}}},
    {"bytes=-0", 100, 8, 0, {{0, 0}}},
    {"bytes=-0,0-0", 100, 8, 1, {{0, 0}}},
    {"bytes=200-300,0-0,-0,100-", 100, 8, 1, {{0, 0}}},
    {"bytes=0-0", 0, 8, 0, {{0, 0}}},
    {"bytes=-1", 0, 8, 0, {{0, 0}}},
    {"bytes=0-", 0, 8, 0, {{0, 0}}},
    {"bytes=0-0,-5,3-", 0, 8, 0, {{0, 0}}},
    /* OWS and empty elements */
    {"bytes= 0-1", 10, 8, 1, {{0, 1}}},
    {"bytes=0-1 , 3-4", 10, 8, 2, {{0, 1}, {3, 4}}},
    {"bytes=0-1,\t3-4", 10, 8, 2, {{0, 1}, {3, 4}}},
    {"bytes=, ,0-1,,", 10, 8, 1, {{0, 1}}},
    {" bytes=0-1 ", 10, 8, 1, {{0, 1}}},
    {"\tbytes=-3\t", 10, 8, 1, {{7, 9}}},
    /* large numbers: up to 2^63 read, past it the field is ignored */
    {"bytes=0-9223372036854775807", 10, 8, 1, {{0, 9}}},
    {"bytes=0-9223372036854775808", 10, 8, 1, {{0, 9}}},
    {"bytes=9223372036854775808-", 10, 8, 0, {{0, 0}}},
    {"bytes=-9223372036854775808", 10, 8, 1, {{0, 9}}},
    {"bytes=9223372036854775807-9223372036854775808", UINT64_MAX, 8, 1,
     {{UINT64_C(9223372036854775807), U63}}},
    {"bytes=-9223372036854775808", UINT64_MAX, 8, 1, {{UINT64_MAX - U63, UINT64_MAX - 1}}},
    {"bytes=0-", UINT64_MAX, 8, 1, {{0, UINT64_MAX - 1}}},
    {"bytes=00000000000000000000000001-2", 10, 8, 1, {{1, 2}}},
    {"bytes=0-9223372036854775809", 10, 8, IGN, {{0, 0}}},
    {"bytes=9223372036854775809-", 10, 8, IGN, {{0, 0}}},
    {"bytes=-9223372036854775809", 10, 8, IGN, {{0, 0}}},
    {"bytes=99999999999999999999-", 10, 8, IGN, {{0, 0}}},
    {"bytes=-99999999999999999999", 10, 8, IGN, {{0, 0}}},
    {"bytes=0-18446744073709551616", 10, 8, IGN, {{0, 0}}},
    /* the member count, satisfiable or not, against max */
    {"bytes=0-1,2-3,4-5", 10, 3, 3, {{0, 1}, {2, 3}, {4, 5}}},
    {"bytes=0-1,2-3,4-5", 10, 2, IGN, {{0, 0}}},
    {"bytes=0-1,200-300,4-5", 10, 2, IGN, {{0, 0}}},
    {"bytes=0-1,,2-3", 10, 2, 2, {{0, 1}, {2, 3}}},
    {"bytes=0-1", 10, 1, 1, {{0, 1}}},
    {"bytes=0-1", 10, 0, IGN, {{0, 0}}},
    {"bytes=20-30,40-50", 10, 2, 0, {{0, 0}}},
    /* invalid syntax */
    {"", 10, 8, IGN, {{0, 0}}},
    {"bytes", 10, 8, IGN, {{0, 0}}},
    {"bytes=", 10, 8, IGN, {{0, 0}}},
    {"bytes=,", 10, 8, IGN, {{0, 0}}},
    {"bytes= ", 10, 8, IGN, {{0, 0}}},
    {"bytes=, ,", 10, 8, IGN, {{0, 0}}},
    {"bytes =0-1", 10, 8, IGN, {{0, 0}}},
    {"bytes = 0-1", 10, 8, IGN, {{0, 0}}},
    {"bytes= 0 - 1", 10, 8, IGN, {{0, 0}}},
    {"bytes=0 -1", 10, 8, IGN, {{0, 0}}},
    {"bytes=0- 1", 10, 8, IGN, {{0, 0}}},
    {"bytes=- 1", 10, 8, IGN, {{0, 0}}},
    {"bytes=0-1 2-3", 10, 8, IGN, {{0, 0}}},
    {"bytes=1-0", 10, 8, IGN, {{0, 0}}},
    {"bytes=1-0", 0, 8, IGN, {{0, 0}}},
    {"bytes=50-40", 10, 8, IGN, {{0, 0}}},
    {"bytes=5-4,0-1", 10, 8, IGN, {{0, 0}}},
    {"bytes=0-1,5-4", 10, 8, IGN, {{0, 0}}},
    {"bytes=-", 10, 8, IGN, {{0, 0}}},
    {"bytes=--1", 10, 8, IGN, {{0, 0}}},
    {"bytes=0--1", 10, 8, IGN, {{0, 0}}},
    {"bytes=0-1-2", 10, 8, IGN, {{0, 0}}},
    {"bytes=1", 10, 8, IGN, {{0, 0}}},
    {"bytes=a-b", 10, 8, IGN, {{0, 0}}},
    {"bytes=0x10-20", 10, 8, IGN, {{0, 0}}},
    {"bytes=+1-2", 10, 8, IGN, {{0, 0}}},
    {"bytes=1-+2", 10, 8, IGN, {{0, 0}}},
    {"bytes=-+1", 10, 8, IGN, {{0, 0}}},
    {"bytes=-1-", 10, 8, IGN, {{0, 0}}},
    {"bytes=1.5-2", 10, 8, IGN, {{0, 0}}},
    {"bytes=0-1;x", 10, 8, IGN, {{0, 0}}},
    {"bytes=0-1,x", 10, 8, IGN, {{0, 0}}},
    {"bytes=0-1, ,a", 10, 8, IGN, {{0, 0}}},
    {"bytes=0-1\r\n", 10, 8, IGN, {{0, 0}}},
    {"bytes==0-1", 10, 8, IGN, {{0, 0}}},
    {"bytes:0-1", 10, 8, IGN, {{0, 0}}},
    {"bytes0-1", 10, 8, IGN, {{0, 0}}},
    {";bytes=0-1", 10, 8, IGN, {{0, 0}}},
    {"items=0-1", 10, 8, IGN, {{0, 0}}},
    {"byte=0-1", 10, 8, IGN, {{0, 0}}},
    {"bytesx=0-1", 10, 8, IGN, {{0, 0}}},
    {"bytes=\xd9\xa1-2", 10, 8, IGN, {{0, 0}}}, /* an Arabic-Indic digit is no DIGIT */
    {"b\xd9tes=0-1", 10, 8, IGN, {{0, 0}}},
};

static int range_guarded(const char *in, size_t len, uint64_t size, fc_range_t *out, int max)
{
    guarded_t g = guarded_copy(in, len);
    /* exactly `max` entries: ASan sees a write past them */
    fc_range_t *heap = malloc(max > 0 ? (size_t)max * sizeof(fc_range_t) : 1);
    int rc = fc_range_parse(g.data, len, size, heap, max);
    if (rc > 0)
        memcpy(out, heap, (size_t)rc * sizeof(fc_range_t));
    free(heap);
    guarded_free(g);
    return rc;
}

static void check_range_result(int rc, const fc_range_t *r, uint64_t size, int max, const char *label)
{
    CHECK(rc == FC_RANGE_IGNORE || (rc >= 0 && rc <= max), "%s: rc %d with max %d", label, rc, max);
    CHECK(rc <= 0 || size > 0, "%s: %d ranges of an empty representation", label, rc);
    for (int k = 0; k < rc; ++k)
        CHECK(r[k].first <= r[k].last && r[k].last < size, "%s: range %d is %llu-%llu of %llu", label, k,
              (unsigned long long)r[k].first, (unsigned long long)r[k].last, (unsigned long long)size);
}

static void test_range_cases(void)
{
    fc_range_t got[64];
    for (size_t i = 0; i < COUNT(range_cases); ++i) {
        const range_case_t *c = &range_cases[i];
        size_t len = strlen(c->in);
        char label[256];
        snprintf(label, sizeof(label), "range[%zu] '%s' size %llu max %d", i, show(c->in, len),
                 (unsigned long long)c->size, c->max);
        ++cases;
        int rc = range_guarded(c->in, len, c->size, got, c->max);
        int same = rc == c->want;
        for (int k = 0; same && k < rc; ++k)
            same = got[k].first == c->ranges[k].first && got[k].last == c->ranges[k].last;
        CHECK(same, "%s: rc %d (first %llu-%llu), want %d", label, rc, rc > 0 ? (unsigned long long)got[0].first : 0,
              rc > 0 ? (unsigned long long)got[0].last : 0, c->want);
        check_range_result(rc, got, c->size, c->max, label);
        for (size_t n = 0; n < len; ++n) {
            int prc = range_guarded(c->in, n, c->size, got, c->max);
            check_range_result(prc, got, c->size, c->max, label);
        }
    }
    /* many members: the count is what limits, and the output never overflows */
    static char many[64 * 8];
    size_t n = (size_t)snprintf(many, sizeof(many), "bytes=0-0");
    for (int k = 1; k < 50; ++k)
        n += (size_t)snprintf(many + n, sizeof(many) - n, ",%d-%d", k, k);
    ++cases;
    int rc = range_guarded(many, n, 1000, got, 50);
    CHECK(rc == 50 && got[49].first == 49 && got[49].last == 49, "50 ranges: rc %d", rc);
    rc = range_guarded(many, n, 1000, got, 49);
    CHECK(rc == IGN, "50 ranges, max 49: rc %d", rc);
    rc = range_guarded(many, n, 10, got, 50);
    CHECK(rc == 10 && got[9].first == 9, "50 ranges of 10 bytes: rc %d", rc);
}

/* ======================================================================== */
/* entity tags                                                              */
/* ======================================================================== */

typedef struct {
    const char *field;
    const char *etag;
    int strong; /* expected with weak = 0 */
    int weak;   /* expected with weak = 1 */
} etag_case_t;

static const etag_case_t etag_cases[] = {
    /* "*" alone matches whatever we have */
    {"*", "\"abc\"", 1, 1},
    {" * ", "W/\"abc\"", 1, 1},
    {"\t*", "", 1, 1},
    {"*,\"a\"", "\"a\"", -1, -1},
    {"\"a\", *", "\"a\"", -1, -1},
    {"* \"a\"", "\"a\"", -1, -1},
    {"**", "\"a\"", -1, -1},
    {"*,", "\"a\"", -1, -1},
    {",*", "\"a\"", -1, -1},
    {"W/*", "\"a\"", -1, -1},
    /* strong and weak comparison (RFC 9110 8.8.3.2 table) */
    {"\"abc\"", "\"abc\"", 1, 1},
    {"W/\"abc\"", "\"abc\"", 0, 1},
    {"\"abc\"", "W/\"abc\"", 0, 1},
    {"W/\"abc\"", "W/\"abc\"", 0, 1},
    {"W/\"1\"", "W/\"2\"", 0, 0},
    {"\"1\"", "\"2\"", 0, 0},
    {"\"abc\"", "\"abcd\"", 0, 0},
    {"\"abcd\"", "\"abc\"", 0, 0},
    {"\"ABC\"", "\"abc\"", 0, 0},
    {"\"\"", "\"\"", 1, 1},
    {"\"\"", "W/\"\"", 0, 1},
    {"\"abc\"", "", 0, 0},
    /* lists, OWS, empty elements */
    {"\"xyz\", \"abc\"", "\"abc\"", 1, 1},
    {"\"xyz\",\"abc\"", "\"abc\"", 1, 1},
    {"\"xyz\" , W/\"abc\" ,, ", "\"abc\"", 0, 1},
    {", ,\"abc\",", "\"abc\"", 1, 1},
    {" \t\"abc\"\t ", "\"abc\"", 1, 1},
    {"\"a\", \"b\", \"c\"", "\"d\"", 0, 0},
    {"\"a\", W/\"b\", \"c\"", "W/\"c\"", 0, 1},
    /* the opaque-tag may hold commas, '*', 'W/', obs-text */
    {"\"a,b\"", "\"a,b\"", 1, 1},
    {"\"a,b\"", "\"a\"", 0, 0},
    {"\"a, \"b\"", "\"b\"", -1, -1},
    {"\"*\"", "\"*\"", 1, 1},
    {"\"W/\"", "\"W/\"", 1, 1},
    {"\"\x80\xff\"", "\"\x80\xff\"", 1, 1},
    {"\"!#~\"", "\"!#~\"", 1, 1},
    /* invalid lists */
    {"", "\"a\"", -1, -1},
    {" ", "\"a\"", -1, -1},
    {",", "\"a\"", -1, -1},
    {" , ,", "\"a\"", -1, -1},
    {"abc", "abc", -1, -1},
    {"\"abc", "\"abc", -1, -1},
    {"abc\"", "\"abc\"", -1, -1},
    {"\"", "\"", -1, -1},
    {"w/\"abc\"", "\"abc\"", -1, -1},
    {"W/abc", "\"abc\"", -1, -1},
    {"W/ \"abc\"", "\"abc\"", -1, -1},
    {"W\"abc\"", "\"abc\"", -1, -1},
    {"W/", "\"abc\"", -1, -1},
    {"W//\"abc\"", "\"abc\"", -1, -1},
    {"\"a b\"", "\"a b\"", -1, -1},
    {"\"a\x7f\"", "\"a\x7f\"", -1, -1},
    {"\"a\tb\"", "\"a\tb\"", -1, -1},
    {"\"a\x01\"", "\"a\x01\"", -1, -1},
    {"\"a\" \"b\"", "\"a\"", -1, -1},
    {"\"a\"\"b\"", "\"a\"", -1, -1},
    {"\"a\"x", "\"a\"", -1, -1},
    {"\"a\";x", "\"a\"", -1, -1},
    {"\"abc\", junk", "\"abc\"", -1, -1}, /* a match does not excuse the rest */
    {"\"abc\", \"unterminated", "\"abc\"", -1, -1},
    {"'abc'", "'abc'", -1, -1},
    {"\"a\\\"b\"", "\"a\\\"b\"", -1, -1}, /* no escapes in an entity-tag */
};

static int etag_guarded(const char *field, size_t len, const char *etag, size_t etag_len, int weak)
{
    guarded_t gf = guarded_copy(field, len);
    guarded_t ge = guarded_copy(etag, etag_len);
    int rc = fc_etag_match(gf.data, len, ge.data, etag_len, weak);
    guarded_free(ge);
    guarded_free(gf);
    return rc;
}

static void test_etag_cases(void)
{
    for (size_t i = 0; i < COUNT(etag_cases); ++i) {
        const etag_case_t *c = &etag_cases[i];
        size_t len = strlen(c->field), elen = strlen(c->etag);
        ++cases;
        int s = etag_guarded(c->field, len, c->etag, elen, 0);
        int w = etag_guarded(c->field, len, c->etag, elen, 1);
        CHECK(s == c->strong && w == c->weak, "etag[%zu] '%s' vs '%s': strong %d weak %d, want %d %d", i,
              show(c->field, len), show(c->etag, elen), s, w, c->strong, c->weak);
        for (size_t n = 0; n < len; ++n) {
            s = etag_guarded(c->field, n, c->etag, elen, 0);
            w = etag_guarded(c->field, n, c->etag, elen, 1);
            CHECK(s >= -1 && s <= 1 && (s == -1) == (w == -1) && s <= w, "etag[%zu] prefix %zu: %d %d", i, n, s, w);
        }
    }
    /* a NUL inside the field is not an etagc */
    static const char nul[] = "\"a\0b\"";
    ++cases;
    CHECK(etag_guarded(nul, sizeof(nul) - 1, nul, sizeof(nul) - 1, 1) == -1, "etag with NUL");
}

/* ======================================================================== */
/* Accept-Encoding                                                          */
/* ======================================================================== */

#define G FC_ENC_GZIP
#define B FC_ENC_BR

typedef struct {
    const char *field;
    unsigned want;
} ae_case_t;

static const ae_case_t ae_cases[] = {
    {"", 0},
    {" ", 0},
    {"gzip", G},
    {"br", B},
    {"gzip, br", G | B},
    {"br,gzip", G | B},
    {"gzip, deflate, br, zstd", G | B},
    {"GZIP", G},
    {"Gzip", G},
    {"x-gzip", G},
    {"X-GZip", G},
    {"Br", B},
    {"BR", B},
    {"deflate", 0},
    {"identity", 0},
    {"compress, gzip", G},
    /* "*" covers what is not listed */
    {"*", G | B},
    {"*;q=0", 0},
    {"*;q=0.5", G | B},
    {"*, gzip;q=0", B},
    {"gzip;q=0, *", B},
    {"br;q=0, *;q=0.5", G},
    {"*;q=0, gzip", G},
    {"*;q=0, br;q=0.1", B},
    {"identity;q=0, *;q=0", 0},
    {"*;q=0.000", 0},
    {"*;q=1, *;q=0", 0},
    /* weights */
    {"gzip;q=0", 0},
    {"gzip;q=0.0", 0},
    {"gzip;q=0.00", 0},
    {"gzip;q=0.000", 0},
    {"gzip;q=0.", 0},
    {"gzip;q=0.001", G},
    {"gzip;q=0.5", G},
    {"br;q=0.999", B},
    {"gzip;q=1", G},
    {"gzip;q=1.", G},
    {"gzip;q=1.0", G},
    {"gzip;q=1.000", G},
    {"gzip;Q=0.5", G},
    {"gzip;q=0.5, br;q=1.0", G | B},
    {"gzip,br;q=0", G},
    /* a q=0 listing wins over a q>0 one of the same coding */
    {"gzip;q=0, gzip", 0},
    {"gzip, gzip;q=0", 0},
    {"x-gzip;q=0, gzip", 0},
    {"gzip;q=0.5, gzip;q=1", G},
    /* OWS around ';' and '=', and around members */
    {"gzip ; q = 0.5", G},
    {"gzip\t;\tq=0.5", G},
    {"gzip;q= 0.5", G},
    {"gzip ;q =0", 0},
    {", ,gzip,,br ,", G | B},
    {" gzip ", G},
    /* members that do not parse are skipped, the rest still count */
    {"gzip;q=1.001", 0},
    {"gzip;q=2", 0},
    {"gzip;q=10", 0},
    {"gzip;q=0.0001", 0},
    {"gzip;q=", 0},
    {"gzip;q", 0},
    {"gzip;", 0},
    {"gzip;;q=1", 0},
    {"gzip;q=.5", 0},
    {"gzip;q=-1", 0},
    {"gzip;q=0x1", 0},
    {"gzip;q=1e0", 0},
    {"gzip;q=0.5 x", 0},
    {"gzip;q=0.5;x=1", 0},
    {"gzip;level=1", 0},
    {"gzip;x=1;q=1", 0},
    {"gzip br", 0},
    {"gzip/br", 0},
    {"\"gzip\"", 0},
    {"gzipx", 0},
    {"gzi", 0},
    {"b", 0},
    {"gzip;q=2, br", B},
    {"br;q=bad, gzip", G},
    {"gzip;q=1,br;q=0x", G},
    /* commas inside a quoted-string do not split a member */
    {"foo;x=\"a,br\"", 0},
    {"foo;x=\"a\\\",br\"", 0},
    {"foo;x=\"a,br\", gzip", G},
    {"foo;x=\"unterminated, br", 0},
    {"\xff\xfe, gzip", G},
};

static unsigned ae_guarded(const char *field, size_t len)
{
    guarded_t g = guarded_copy(field, len);
    unsigned rc = fc_accept_encoding(g.data, len);
    guarded_free(g);
    return rc;
}

static void test_accept_encoding_cases(void)
{
    for (size_t i = 0; i < COUNT(ae_cases); ++i) {
        const ae_case_t *c = &ae_cases[i];
        size_t len = strlen(c->field);
        ++cases;
        unsigned rc = ae_guarded(c->field, len);
        CHECK(rc == c->want, "accept-encoding[%zu] '%s': %u, want %u", i, show(c->field, len), rc, c->want);
        for (size_t n = 0; n < len; ++n) {
            unsigned prc = ae_guarded(c->field, n);
            CHECK((prc & ~(G | B)) == 0, "accept-encoding[%zu] prefix %zu: %u", i, n, prc);
        }
    }
    static const char nul[] = "gzip\0, br";
    ++cases;
    CHECK(ae_guarded(nul, sizeof(nul) - 1) == B, "accept-encoding with NUL");
}

/* ======================================================================== */
/* mutations                                                                */
/* ======================================================================== */

/* Mutates `buf` (length *len, capacity cap) in place: replace, insert or
 * delete a byte, or splice in a fragment chosen to reach edge cases. */
static void mutate(char *buf, size_t *len, size_t cap, const char *const *fragments, size_t nfrag)
{
    static const char bytes[] = {'%', '.', '/', '\\', '2', 'e', 'E', 'f', 'F', 'c', '0', 'a', '5',
                                 '-', ',', '=', ';', ' ', '\t', '"', '*', 'W', '\0', '\x7f', '\x80',
                                 '\xc0', '\xae', '\xff', '9', ':', 'q', '1'};
    int ops = 1 + (int)rng_below(3);
    for (int k = 0; k < ops; ++k) {
        uint32_t op = rng_below(4);
        size_t at = *len ? rng_below((uint32_t)*len + 1) : 0;
        if (op == 0 && at < *len) {
            buf[at] = rng_below(2) ? bytes[rng_below(sizeof(bytes))] : (char)rng();
        } else if (op == 1 && *len < cap) {
            memmove(buf + at + 1, buf + at, *len - at);
            buf[at] = bytes[rng_below(sizeof(bytes))];
            ++*len;
        } else if (op == 2 && at < *len) {
            memmove(buf + at, buf + at + 1, *len - at - 1);
            --*len;
        } else {
            const char *f = fragments[rng_below((uint32_t)nfrag)];
            size_t fl = strlen(f);
            if (*len + fl <= cap) {
                memmove(buf + at + fl, buf + at, *len - at);
                memcpy(buf + at, f, fl);
                *len += fl;
            }
        }
    }
}

#define MUT_CAP 96

static void test_mutations(void)
{
    static const char *const path_frags[] = {"%2e", "%2E", "%2e%2e", "..", ".", "/", "//", "/..", "/.",
                                             "%2f", "%5c", "%c0%ae", "%c3%a9", "%e2%82%ac", "%ed%a0%80",
                                             "%f4%90%80%80", "%00", "%0", "%", "%25", "a", "%f0%9f%98%80"};
    static const char *const range_frags[] = {"bytes=", "0-", "-", "-0", "0", "1", ",", ", ", "9223372036854775808",
                                              "18446744073709551616", "99", "5-4", " "};
    static const char *const etag_frags[] = {"\"", "W/", "\"abc\"", "W/\"abc\"", ",", " ", "*", "\"a,b\""};
    static const char *const ae_frags[] = {"gzip", "br", "x-gzip", "*", ";q=0", ";q=1", ";q=0.5", ",", " ", "\"",
                                           "identity", "q", "=", ".", "0"};
    static const char *const date_frags[] = {"Sun", "Sunday", ", ", "-Nov-", " Nov ", "GMT", "1994", "94", "08:49:37",
                                             "29", "Feb", "60", "00", " ", "2000"};
    static char buf[MUT_CAP], out[MUT_CAP];
    static const uint64_t sizes[] = {0, 1, 2, 10, 1000, UINT64_C(1) << 40, UINT64_MAX};
    int rounds = 0;

    /* paths: the invariants and the reference; seeds are the table cases */
    for (int r = 0; r < 12000; ++r, ++rounds) {
        const path_case_t *seed = &path_cases[rng_below(COUNT(path_cases))];
        size_t len = seed->len ? seed->len : strlen(seed->in);
        if (len > MUT_CAP)
            len = MUT_CAP;
        memcpy(buf, seed->in, len);
        mutate(buf, &len, MUT_CAP, path_frags, COUNT(path_frags));
        if (rng_below(4) == 0 && len > 0)
            buf[0] = '/';
        long rc = normalize_checked(buf, len, out, "mutated path");
        check_path_result(buf, len, rc, out, show(buf, len));
    }

    /* ranges: first <= last < size, never more than max */
    for (int r = 0; r < 6000; ++r, ++rounds) {
        const range_case_t *seed = &range_cases[rng_below(COUNT(range_cases))];
        size_t len = strlen(seed->in);
        fc_range_t got[8];
        if (len > MUT_CAP)
            len = MUT_CAP;
        memcpy(buf, seed->in, len);
        mutate(buf, &len, MUT_CAP, range_frags, COUNT(range_frags));
        uint64_t size = rng_below(2) ? seed->size : sizes[rng_below(COUNT(sizes))];
        int max = (int)rng_below(9);
        int rc = range_guarded(buf, len, size, got, max);
        check_range_result(rc, got, size, max, show(buf, len));
    }

    /* entity tags: -1/0/1, both comparisons agree on validity, strong
     * implies weak */
    for (int r = 0; r < 4000; ++r, ++rounds) {
        const etag_case_t *seed = &etag_cases[rng_below(COUNT(etag_cases))];
        size_t len = strlen(seed->field);
        if (len > MUT_CAP)
            len = MUT_CAP;
        memcpy(buf, seed->field, len);
        mutate(buf, &len, MUT_CAP, etag_frags, COUNT(etag_frags));
        int s = etag_guarded(buf, len, seed->etag, strlen(seed->etag), 0);
        int w = etag_guarded(buf, len, seed->etag, strlen(seed->etag), 1);
        CHECK(s >= -1 && s <= 1 && (s == -1) == (w == -1) && s <= w, "mutated etag '%s': %d %d", show(buf, len), s,
              w);
    }

    /* Accept-Encoding: only our bits */
    for (int r = 0; r < 4000; ++r, ++rounds) {
        const ae_case_t *seed = &ae_cases[rng_below(COUNT(ae_cases))];
        size_t len = strlen(seed->field);
        if (len > MUT_CAP)
            len = MUT_CAP;
        memcpy(buf, seed->field, len);
        mutate(buf, &len, MUT_CAP, ae_frags, COUNT(ae_frags));
        unsigned m = ae_guarded(buf, len);
        CHECK((m & ~(G | B)) == 0, "mutated accept-encoding '%s': %u", show(buf, len), m);
    }

    /* dates: a parsed date is in range and formats back to itself */
    for (int r = 0; r < 6000; ++r, ++rounds) {
        const date_case_t *seed = &date_cases[rng_below(COUNT(date_cases))];
        size_t len = seed->len ? seed->len : strlen(seed->in);
        if (len > MUT_CAP)
            len = MUT_CAP;
        memcpy(buf, seed->in, len);
        mutate(buf, &len, MUT_CAP, date_frags, COUNT(date_frags));
        int64_t t;
        int rc = date_parse_guarded(buf, len, &t);
        CHECK(rc == -1 || rc == 0, "mutated date '%s': rc %d", show(buf, len), rc);
        if (rc == 0) {
            char text[FC_HTTP_DATE_LEN + 1];
            int64_t back;
            CHECK(t >= DATE_MIN && t <= DATE_MAX, "mutated date '%s': %lld out of range", show(buf, len),
                  (long long)t);
            date_format_guarded(t, text);
            CHECK(fc_http_date_parse(text, FC_HTTP_DATE_LEN, &back) == 0 && back == t,
                  "mutated date '%s': %lld formats as '%s'", show(buf, len), (long long)t, text);
        }
    }
    printf("  mutations: %d rounds\n", rounds);
}

int main(void)
{
    printf("fc_static tests\n");
    test_path_normalize_cases();
    test_path_normalize_long();
    test_path_has_dotfile();
    test_date_parse_cases();
    test_date_format_known();
    test_date_calendar();
    test_date_gmtime();
    test_range_cases();
    test_etag_cases();
    test_accept_encoding_cases();
    test_mutations();
    printf("%d table cases, %d checks, %d failed\n", cases, checks, failures);
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures ? 1 : 0;
}
