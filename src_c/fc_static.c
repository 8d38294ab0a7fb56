/* fc_static.c: request-path normalisation, HTTP-dates, Range, entity-tag
 * lists and Accept-Encoding. Contracts are in fc_static.h.
 *
 * Every loop reads only bytes in [s, s + len) and every write stays inside
 * the output it was given; src_c/tests/test_fc_static.c checks both with
 * inputs placed right before a PROT_NONE page and exactly-sized outputs.
 * Nothing here depends on the locale: character classes are spelled out.
 */
#include "fc_static.h"
#include "fc_text.h"

#include <string.h>

static inline int fc_is_digit(char c) { return c >= '0' && c <= '9'; }

static inline int fc_is_ows(char c) { return c == ' ' || c == '\t'; }

/* the first byte at or after p that is not SP or HTAB, or end */
static const char *fc_skip_ows(const char *p, const char *end)
{
    while (p < end && fc_is_ows(*p))
        ++p;
    return p;
}

/* 1 for a tchar (RFC 9110 5.6.2): "!#$%&'*+-.^_`|~" DIGIT ALPHA, else 0 */
static int fc_is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'))
        return 1;
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
        return 1;
    default:
        return 0;
    }
}


/* ---- request paths ------------------------------------------------------
 * Theory of operation: one left-to-right pass. Each input byte, or each %XX
 * triple, yields one decoded byte, checked in this order: NUL, encoded
 * slash, backslash, control, then UTF-8 (a small state machine over every
 * decoded byte, raw bytes >= 0x80 included, so "%C3" followed by a raw
 * 0xA9 is one valid character). A raw '/' ends a segment, which is then
 * dropped (empty, "."), popped with its parent (".."), or kept.
 *
 * Invariant: out[0, o) is the result so far; it starts with '/' and, at a
 * segment boundary, ends with '/'. Every byte written consumed at least one
 * input byte, so o <= i (the input index) whenever a byte is written: the
 * writes never pass out[len - 1]. */

/* The end of a segment out[seg, o), with out[seg - 1] == '/'. Returns the
 * new o (out[0, o) ends with '/' again unless the caller adds one), or -1
 * when ".." would climb above the root. Sets *keep when the segment stays. */
static long fc_path_end_segment(char *out, size_t seg, size_t o, int *keep)
{
    size_t n = o - seg;
    *keep = 0;
    if (n == 0 || (n == 1 && out[seg] == '.'))
        return (long)seg;
    if (n == 2 && out[seg] == '.' && out[seg + 1] == '.') {
        if (seg == 1)
            return -1;
        size_t k = seg - 2; /* out[seg - 1] is the '/' before ".."; out[0] is '/' */
        while (out[k] != '/')
            --k;
        return (long)(k + 1);
    }
    *keep = 1;
    return (long)o;
}

long fc_path_normalize(const char *path, size_t len, char *out)
{
    /* UTF-8 (RFC 3629 4, Unicode table 3-7): `need` continuation bytes are
     * still due; the next one must be in [lo, hi], which rules out
     * overlong forms (E0 80..9F, F0 80..8F), surrogates (ED A0..BF) and
     * code points past U+10FFFF (F4 90..BF). */
    unsigned need = 0;
    unsigned char lo = 0x80, hi = 0xbf;
    size_t o = 1, seg = 1, i = 1;

    if (len == 0 || path[0] != '/')
        return FC_PATH_NOT_ABSOLUTE;
    out[0] = '/';
    while (i < len) {
        unsigned char c = (unsigned char)path[i];
        int encoded = 0;
        if (c == '%') {
            int h1, h2;
            if (len - i < 3 || (h1 = fc_hex_value(path[i + 1])) < 0 || (h2 = fc_hex_value(path[i + 2])) < 0)
                return FC_PATH_BAD_ESCAPE;
            c = (unsigned char)(h1 << 4 | h2);
            encoded = 1;
            i += 3;
        } else {
            i += 1;
        }
        if (c == 0)
            return FC_PATH_NUL;
        if (c == '/' && encoded)
            return FC_PATH_ENCODED_SLASH;
        if (c == '\\')
            return FC_PATH_BACKSLASH;
        if (c < 0x20 || c == 0x7f)
            return FC_PATH_CONTROL;
        if (need > 0) {
            if (c < lo || c > hi)
                return FC_PATH_BAD_UTF8;
            --need;
            lo = 0x80;
            hi = 0xbf;
        } else if (c >= 0x80) {
            if (c >= 0xc2 && c <= 0xdf) {
                need = 1;
            } else if (c >= 0xe0 && c <= 0xef) {
                need = 2;
                if (c == 0xe0)
                    lo = 0xa0;
                else if (c == 0xed)
                    hi = 0x9f;
            } else if (c >= 0xf0 && c <= 0xf4) {
                need = 3;
                if (c == 0xf0)
                    lo = 0x90;
                else if (c == 0xf4)
                    hi = 0x8f;
            } else { /* a stray continuation byte, C0/C1 (always overlong) or F5..FF */
                return FC_PATH_BAD_UTF8;
            }
        }
        if (c == '/') {
            int keep;
            long next = fc_path_end_segment(out, seg, o, &keep);
            if (next < 0)
                return FC_PATH_ESCAPES_ROOT;
            o = (size_t)next;
            if (keep)
                out[o++] = '/';
            seg = o;
        } else {
            out[o++] = (char)c;
        }
    }
    if (need > 0)
        return FC_PATH_BAD_UTF8;
    int keep;
    long next = fc_path_end_segment(out, seg, o, &keep);
    if (next < 0)
        return FC_PATH_ESCAPES_ROOT;
    return next; /* a final "." or ".." leaves the result ending in '/' */
}

int fc_path_has_dotfile(const char *path, size_t len)
{
    for (size_t i = 0; i < len; ++i)
        if (path[i] == '.' && (i == 0 || path[i - 1] == '/'))
            return 1;
    return 0;
}

/* ---- HTTP-date (RFC 9110 5.6.7) -----------------------------------------
 * Days are counted from 0000-01-01 of the proleptic Gregorian calendar, so
 * that every year the formats can spell (0000-9999) is a non-negative
 * count and integer division needs no care for signs. */

static const char fc_day_names[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const fc_day_names_long[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                                  "Thursday", "Friday", "Saturday"};
static const char fc_month_names[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
/* days before the first of each month in a common year */
static const int fc_days_before_month[12] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};

#define FC_DAYS_TO_1970 INT64_C(719528) /* 0000-01-01 to 1970-01-01 */
#define FC_DATE_MIN (-FC_DAYS_TO_1970 * 86400) /* 0000-01-01 00:00:00 */
#define FC_DATE_MAX INT64_C(253402300799)     /* 9999-12-31 23:59:59 */

/* Gregorian: every 4th year, but not every 100th, but every 400th */
static int fc_is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

/* Days from 0000-01-01 to the first of January of year y >= 0: 365 a year
 * plus one for each leap year in [0, y). The leap years there are the
 * multiples of 4, less those of 100, plus those of 400, year 0 being one of
 * each: ceil(y/4) - ceil(y/100) + ceil(y/400). */
static int64_t fc_days_before_year(int64_t y)
{
    return 365 * y + (y + 3) / 4 - (y + 99) / 100 + (y + 399) / 400;
}

/* days in month 1..12 of year y */
static int fc_month_length(int month, int64_t y)
{
    static const int lengths[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return lengths[month - 1] + (month == 2 && fc_is_leap(y));
}

/* A parse cursor: each reader advances `p` on success and returns 0, or
 * returns -1 with p anywhere. */
typedef struct {
    const char *p;
    const char *end;
} fc_cursor_t;

/* exactly the byte ch */
static int fc_read_char(fc_cursor_t *c, char ch)
{
    if (c->p == c->end || *c->p != ch)
        return -1;
    ++c->p;
    return 0;
}

/* exactly n digits */
static int fc_read_digits(fc_cursor_t *c, int n, int *value)
{
    int v = 0;
    if (c->end - c->p < n)
        return -1;
    for (int k = 0; k < n; ++k) {
        if (!fc_is_digit(c->p[k]))
            return -1;
        v = v * 10 + (c->p[k] - '0');
    }
    c->p += n;
    *value = v;
    return 0;
}

/* month = %s"Jan" / ... (case-sensitive); 1..12 */
static int fc_read_month(fc_cursor_t *c, int *month)
{
    if (c->end - c->p < 3)
        return -1;
    for (int m = 0; m < 12; ++m) {
        if (memcmp(c->p, fc_month_names[m], 3) == 0) {
            c->p += 3;
            *month = m + 1;
            return 0;
        }
    }
    return -1;
}

/* time-of-day = hour ":" minute ":" second (2DIGIT each) */
static int fc_read_time(fc_cursor_t *c, int *hour, int *minute, int *second)
{
    if (fc_read_digits(c, 2, hour) || fc_read_char(c, ':') || fc_read_digits(c, 2, minute) ||
        fc_read_char(c, ':') || fc_read_digits(c, 2, second))
        return -1;
    return 0;
}

/* GMT = %s"GMT" */
static int fc_read_gmt(fc_cursor_t *c)
{
    if (c->end - c->p < 3 || memcmp(c->p, "GMT", 3) != 0)
        return -1;
    c->p += 3;
    return 0;
}

int fc_http_date_parse(const char *s, size_t len, int64_t *out)
{
    const char *end = s + len;
    fc_cursor_t c;
    int day, month, year, hour, minute, second;

    while (end > s && fc_is_ows(end[-1]))
        --end;
    c.p = fc_skip_ows(s, end);
    c.end = end;

    /* the day name tells the format apart */
    const char *name = c.p;
    while (c.p < end && ((*c.p | 0x20) >= 'a' && (*c.p | 0x20) <= 'z'))
        ++c.p;
    size_t name_len = (size_t)(c.p - name);
    int short_name = 0, long_name = 0;
    for (int d = 0; d < 7; ++d) {
        if (name_len == 3 && memcmp(name, fc_day_names[d], 3) == 0)
            short_name = 1;
        if (name_len == strlen(fc_day_names_long[d]) && memcmp(name, fc_day_names_long[d], name_len) == 0)
            long_name = 1;
    }

    if (short_name && c.p < end && *c.p == ',') {
        /* IMF-fixdate = day-name "," SP date1 SP time-of-day SP GMT
         * date1       = day SP month SP year ; e.g., 02 Jun 1982 */
        if (fc_read_char(&c, ',') || fc_read_char(&c, ' ') || fc_read_digits(&c, 2, &day) ||
            fc_read_char(&c, ' ') || fc_read_month(&c, &month) || fc_read_char(&c, ' ') ||
            fc_read_digits(&c, 4, &year) || fc_read_char(&c, ' ') ||
            fc_read_time(&c, &hour, &minute, &second) || fc_read_char(&c, ' ') || fc_read_gmt(&c))
            return -1;
    } else if (long_name) {
        /* rfc850-date = day-name-l "," SP date2 SP time-of-day SP GMT
         * date2       = day "-" month "-" 2DIGIT ; e.g., 02-Jun-82 */
        if (fc_read_char(&c, ',') || fc_read_char(&c, ' ') || fc_read_digits(&c, 2, &day) ||
            fc_read_char(&c, '-') || fc_read_month(&c, &month) || fc_read_char(&c, '-') ||
            fc_read_digits(&c, 2, &year) || fc_read_char(&c, ' ') ||
            fc_read_time(&c, &hour, &minute, &second) || fc_read_char(&c, ' ') || fc_read_gmt(&c))
            return -1;
        /* RFC 9110 5.6.7: a two-digit year more than 50 years in the future
         * is the most recent past year with those digits; judged from the
         * date itself, that splits the century at 70 */
        year += year >= 70 ? 1900 : 2000;
    } else if (short_name) {
        /* asctime-date = day-name SP date3 SP time-of-day SP year
         * date3        = month SP ( 2DIGIT / ( SP DIGIT )) ; e.g., Jun  2 */
        if (fc_read_char(&c, ' ') || fc_read_month(&c, &month) || fc_read_char(&c, ' '))
            return -1;
        if (c.p < end && *c.p == ' ') {
            ++c.p;
            if (fc_read_digits(&c, 1, &day))
                return -1;
        } else if (fc_read_digits(&c, 2, &day)) {
            return -1;
        }
        if (fc_read_char(&c, ' ') || fc_read_time(&c, &hour, &minute, &second) || fc_read_char(&c, ' ') ||
            fc_read_digits(&c, 4, &year))
            return -1;
    } else {
        return -1;
    }
    if (c.p != end)
        return -1;
    if (day < 1 || day > fc_month_length(month, year) || hour > 23 || minute > 59 || second > 60)
        return -1;
    if (second == 60) /* a leap second: kept in its minute rather than rolled into the next day */
        second = 59;

    int64_t days = fc_days_before_year(year) - FC_DAYS_TO_1970 + fc_days_before_month[month - 1] +
                   (month > 2 && fc_is_leap(year)) + (day - 1);
    *out = days * 86400 + hour * 3600 + minute * 60 + second;
    return 0;
}

/* writes v (0..99) as two digits; returns p + 2 */
static char *fc_put2(char *p, int v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
    return p + 2;
}

int fc_http_date_format(int64_t t, char *out)
{
    if (t < FC_DATE_MIN)
        t = FC_DATE_MIN;
    else if (t > FC_DATE_MAX)
        t = FC_DATE_MAX;
    int64_t since0 = t - FC_DATE_MIN; /* seconds since 0000-01-01, >= 0 */
    int64_t days = since0 / 86400;
    int secs = (int)(since0 % 86400);

    /* the year: an estimate from the mean Gregorian year (146097 days per
     * 400 years), then corrected by at most one either way */
    int64_t year = days * 400 / 146097;
    while (fc_days_before_year(year) > days)
        --year;
    while (fc_days_before_year(year + 1) <= days)
        ++year;
    int yday = (int)(days - fc_days_before_year(year));
    int leap = fc_is_leap(year);
    int month = 11;
    while (fc_days_before_month[month] + (month >= 2 && leap) > yday)
        --month;
    int mday = yday - (fc_days_before_month[month] + (month >= 2 && leap)) + 1;
    int wday = (int)((days + 6) % 7); /* 0000-01-01 was a Saturday */

    char *p = out;
    memcpy(p, fc_day_names[wday], 3);
    p += 3;
    *p++ = ',';
    *p++ = ' ';
    p = fc_put2(p, mday);
    *p++ = ' ';
    memcpy(p, fc_month_names[month], 3);
    p += 3;
    *p++ = ' ';
    p = fc_put2(p, (int)(year / 100));
    p = fc_put2(p, (int)(year % 100));
    *p++ = ' ';
    p = fc_put2(p, secs / 3600);
    *p++ = ':';
    p = fc_put2(p, secs / 60 % 60);
    *p++ = ':';
    p = fc_put2(p, secs % 60);
    memcpy(p, " GMT", 5); /* with the NUL */
    return FC_HTTP_DATE_LEN;
}

/* ---- Range (RFC 9110 14.1.1, 14.1.2) ------------------------------------
 * ranges-specifier = range-unit "=" range-set
 * range-set        = 1#range-spec
 * range-spec       = int-range / suffix-range / other-range
 * int-range        = first-pos "-" [ last-pos ]
 * suffix-range     = "-" suffix-length
 * An other-range is not a bytes range: the whole field is ignored. */

#define FC_RANGE_NUMBER_MAX (UINT64_C(1) << 63)

/* 1*DIGIT up to FC_RANGE_NUMBER_MAX; returns 0, 1 when there is no digit,
 * or -1 when the number is larger. */
static int fc_read_range_number(fc_cursor_t *c, uint64_t *value)
{
    uint64_t v = 0;
    const char *start = c->p;
    while (c->p < c->end && fc_is_digit(*c->p)) {
        unsigned d = (unsigned)(*c->p - '0');
        if (v > (FC_RANGE_NUMBER_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
        ++c->p;
    }
    *value = v;
    return c->p == start;
}

int fc_range_parse(const char *s, size_t len, uint64_t size, fc_range_t *ranges, int max)
{
    const char *end = s + len;
    fc_cursor_t c = {fc_skip_ows(s, end), end};
    int members = 0, n = 0;

    if (end - c.p < 6 || !fc_token_eq(c.p, 5, FC_LIT("bytes")) || c.p[5] != '=')
        return FC_RANGE_IGNORE;
    c.p += 6;
    for (;;) {
        c.p = fc_skip_ows(c.p, end);
        if (c.p == end)
            break;
        if (*c.p == ',') { /* an empty element */
            ++c.p;
            continue;
        }
        if (++members > max)
            return FC_RANGE_IGNORE;
        uint64_t first, last;
        int no_first = fc_read_range_number(&c, &first);
        if (no_first < 0 || fc_read_char(&c, '-'))
            return FC_RANGE_IGNORE;
        int no_last = fc_read_range_number(&c, &last);
        if (no_last < 0 || (no_first && no_last))
            return FC_RANGE_IGNORE;
        c.p = fc_skip_ows(c.p, end);
        if (c.p < end && *c.p != ',')
            return FC_RANGE_IGNORE;
        if (no_first) { /* suffix-range: the last `last` bytes */
            if (last == 0 || size == 0)
                continue;
            first = last >= size ? 0 : size - last;
            last = size - 1;
        } else {
            if (!no_last && first > last)
                return FC_RANGE_IGNORE;
            if (first >= size)
                continue;
            if (no_last || last >= size)
                last = size - 1;
        }
        ranges[n].first = first;
        ranges[n].last = last;
        ++n;
    }
    return members == 0 ? FC_RANGE_IGNORE : n;
}

/* ---- entity tags (RFC 9110 8.8.3) ---------------------------------------
 * entity-tag = [ weak ] opaque-tag
 * weak       = %s"W/"
 * opaque-tag = DQUOTE *etagc DQUOTE
 * etagc      = %x21 / %x23-7E / obs-text
 * An opaque-tag may hold a comma, so the list is read tag by tag rather
 * than split on commas first. */

/* 1 for an etagc byte (see above), else 0 */
static int fc_is_etagc(unsigned char c) { return c == 0x21 || (c >= 0x23 && c != 0x7f); }

/* Reads an entity-tag at c->p; sets the opaque-tag span (quotes included)
 * and whether it is weak. Returns 0, or -1 when the bytes are no tag. */
static int fc_read_etag(fc_cursor_t *c, const char **opaque, size_t *opaque_len, int *weak)
{
    *weak = 0;
    if (c->end - c->p >= 2 && c->p[0] == 'W' && c->p[1] == '/') {
        *weak = 1;
        c->p += 2;
    }
    const char *start = c->p;
    if (fc_read_char(c, '"'))
        return -1;
    while (c->p < c->end && fc_is_etagc((unsigned char)*c->p))
        ++c->p;
    if (fc_read_char(c, '"'))
        return -1;
    *opaque = start;
    *opaque_len = (size_t)(c->p - start);
    return 0;
}

int fc_etag_match(const char *field, size_t len, const char *etag, size_t etag_len, int weak)
{
    const char *end = field + len;
    fc_cursor_t c = {fc_skip_ows(field, end), end};
    int ours_weak = etag_len >= 2 && etag[0] == 'W' && etag[1] == '/';
    const char *ours = ours_weak ? etag + 2 : etag;
    size_t ours_len = ours_weak ? etag_len - 2 : etag_len;
    int tags = 0, matched = 0;

    /* If-Match = "*" / #entity-tag: "*" stands alone */
    if (c.p < end && *c.p == '*')
        return fc_skip_ows(c.p + 1, end) == end ? 1 : -1;
    for (;;) {
        while (c.p < end && (fc_is_ows(*c.p) || *c.p == ','))
            ++c.p; /* OWS and empty elements (RFC 9110 5.6.1.2) */
        if (c.p == end)
            break;
        const char *opaque;
        size_t opaque_len;
        int theirs_weak;
        if (fc_read_etag(&c, &opaque, &opaque_len, &theirs_weak))
            return -1;
        ++tags;
        if ((weak || (!ours_weak && !theirs_weak)) && opaque_len == ours_len &&
            memcmp(opaque, ours, ours_len) == 0)
            matched = 1; /* keep reading: a list invalid further on is ignored whole */
        c.p = fc_skip_ows(c.p, end);
        if (c.p < end && *c.p != ',')
            return -1;
    }
    return tags == 0 ? -1 : matched;
}

/* ---- Accept-Encoding (RFC 9110 12.5.3, 12.4.2) --------------------------
 * Accept-Encoding = #( codings [ weight ] )
 * codings         = content-coding / "identity" / "*"
 * weight          = OWS ";" OWS "q=" qvalue
 * qvalue          = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
 * Leniency: OWS is also allowed around "=", as many clients and servers do. */

/* qvalue in thousandths (0..1000), or -1. The whole span must be the value. */
static int fc_read_qvalue(const char *p, const char *end)
{
    if (p == end || (*p != '0' && *p != '1'))
        return -1;
    int whole = *p++ - '0', frac = 0, digits = 0;
    if (p < end) {
        if (*p++ != '.')
            return -1;
        for (; p < end; ++p, ++digits) {
            if (digits == 3 || !fc_is_digit(*p))
                return -1;
            frac = frac * 10 + (*p - '0');
        }
    }
    for (; digits < 3; ++digits)
        frac *= 10;
    if (whole == 1 && frac != 0)
        return -1;
    return whole * 1000 + frac;
}

/* One list member [p, end) trimmed of OWS: its weight in thousandths and
 * the coding's span, or -1 if it does not parse. */
static int fc_read_coding(const char *p, const char *end, const char **name, size_t *name_len)
{
    const char *start = p;
    while (p < end && fc_is_tchar((unsigned char)*p))
        ++p;
    if (p == start)
        return -1;
    *name = start;
    *name_len = (size_t)(p - start);
    p = fc_skip_ows(p, end);
    if (p == end)
        return 1000;
    if (*p != ';')
        return -1;
    p = fc_skip_ows(p + 1, end);
    if (p == end || (*p | 0x20) != 'q')
        return -1;
    p = fc_skip_ows(p + 1, end);
    if (p == end || *p != '=')
        return -1;
    p = fc_skip_ows(p + 1, end);
    return fc_read_qvalue(p, end);
}

enum { FC_SEEN_POSITIVE = 1, FC_SEEN_ZERO = 2 };

unsigned fc_accept_encoding(const char *field, size_t len)
{
    const char *p = field, *end = field + len;
    unsigned gzip = 0, br = 0, star = 0; /* FC_SEEN_* of each */

    while (p < end) {
        /* the member ends at the next comma outside a quoted-string: a
         * member with one does not parse, but its commas must not split it */
        const char *m = p;
        int quoted = 0;
        while (p < end && (quoted || *p != ',')) {
            if (quoted && *p == '\\' && p + 1 < end)
                ++p;
            else if (*p == '"')
                quoted = !quoted;
            ++p;
        }
        const char *m_end = p;
        if (p < end)
            ++p; /* the comma */
        m = fc_skip_ows(m, m_end);
        while (m_end > m && fc_is_ows(m_end[-1]))
            --m_end;
        if (m == m_end)
            continue; /* an empty element */

        const char *name;
        size_t name_len;
        int q = fc_read_coding(m, m_end, &name, &name_len);
        if (q < 0)
            continue;
        unsigned seen = q > 0 ? FC_SEEN_POSITIVE : FC_SEEN_ZERO;
        if (fc_token_eq(name, name_len, FC_LIT("gzip")) || fc_token_eq(name, name_len, FC_LIT("x-gzip")))
            gzip |= seen;
        else if (fc_token_eq(name, name_len, FC_LIT("br")))
            br |= seen;
        else if (name_len == 1 && name[0] == '*')
            star |= seen;
    }

    /* "*" covers the codings not listed at all; a q=0 listing wins over a
     * q>0 one of the same coding */
    unsigned star_ok = star == FC_SEEN_POSITIVE;
    unsigned mask = 0;
    if (gzip ? gzip == FC_SEEN_POSITIVE : star_ok)
        mask |= FC_ENC_GZIP;
    if (br ? br == FC_SEEN_POSITIVE : star_ok)
        mask |= FC_ENC_BR;
    return mask;
}
