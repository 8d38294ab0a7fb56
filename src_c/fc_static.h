/* fc_static: the byte-level decisions of serving a file over HTTP, plain C,
 * no allocation, no system calls: request-path normalisation (the safety
 * boundary of the static handler), HTTP-dates, byte ranges, entity-tag
 * lists and Accept-Encoding.
 *
 * Every function reads a field value or path as pointer + length (not NUL
 * terminated) and writes only to the outputs it is given. Policy (which
 * status to answer) stays with the caller; these functions say what the
 * bytes mean.
 */
#ifndef FC_STATIC_H
#define FC_STATIC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- request paths --------------------------------------------------------
 * Why a path was refused (negative returns of fc_path_normalize). */
typedef enum {
    FC_PATH_OK = 0,
    FC_PATH_BAD_ESCAPE = -1,   /* '%' not followed by two hex digits */
    FC_PATH_NUL = -2,          /* a NUL byte, raw or %00 */
    FC_PATH_ENCODED_SLASH = -3,/* %2F: would join or split segments behind our back */
    FC_PATH_BACKSLASH = -4,    /* '\' raw or %5C: a separator on other systems */
    FC_PATH_BAD_UTF8 = -5,     /* invalid UTF-8 once decoded, overlong forms included */
    FC_PATH_ESCAPES_ROOT = -6, /* ".." climbing above "/" */
    FC_PATH_NOT_ABSOLUTE = -7, /* empty, or not starting with '/' */
    FC_PATH_CONTROL = -8       /* a control character (0x01-0x1f, 0x7f) once decoded */
} fc_path_error_t;

/* Normalises the raw (percent-encoded) path of a request target into `out`,
 * which must have room for `len` bytes (the result is never longer).
 * Decodes %XX, collapses repeated '/', removes "." segments and resolves
 * ".." segments (RFC 3986 5.2.4); a trailing '/' (or a final "." / ".."
 * segment) leaves the result ending in '/'. Decoding happens before the
 * dot-segment removal, so %2e%2e is "..". Empty segments are dropped
 * before ".." is resolved ("/a//.." is "/"). Raw bytes >= 0x80 and decoded
 * ones form one byte stream for the UTF-8 check ("%C3" then a raw 0xA9 is
 * valid); a literal segment such as "..." or "..a" is a plain name.
 * Returns the length of the result (>= 1, it starts with '/'), or a
 * negative fc_path_error_t: the first problem met reading left to right
 * (a ".." is judged when its segment ends). On error, `out` holds
 * unspecified bytes within its first `len`. */
long fc_path_normalize(const char *path, size_t len, char *out);

/* 1 if any segment of a normalised path starts with '.' (a dotfile or a
 * dot-directory such as .git), else 0. */
int fc_path_has_dotfile(const char *path, size_t len);

/* ---- HTTP-date (RFC 9110 5.6.7) -------------------------------------------
 * Parses an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") and, as the RFC
 * requires of recipients, the obsolete RFC 850 ("Sunday, 06-Nov-94 08:49:37
 * GMT", two-digit years read as the nearest century per RFC 9110 5.6.7 with
 * now = the date itself: 70-99 are 19xx, 00-69 are 20xx) and asctime
 * ("Sun Nov  6 08:49:37 1994") forms. Optional whitespace around the value
 * is allowed. Names are case-sensitive as in the ABNF (%s"Sun", %s"Nov",
 * %s"GMT"); the day name must be one of the seven but need not agree with
 * the date; the day must exist in its month (leap years included); second
 * 60 (a leap second) is read as 59. Years 0000-9999 are accepted, so *out
 * is negative before 1970. Returns 0 and stores seconds since the epoch in
 * *out, or -1 when the value is not a valid date (the caller then ignores
 * the field). */
int fc_http_date_parse(const char *s, size_t len, int64_t *out);

/* Formats `t` (seconds since the epoch, UTC) as an IMF-fixdate into `out`,
 * which has room for FC_HTTP_DATE_LEN + 1 bytes; writes the NUL too and
 * returns FC_HTTP_DATE_LEN (29). A `t` outside what four year digits can
 * spell is clamped to 0000-01-01 00:00:00 or 9999-12-31 23:59:59. */
#define FC_HTTP_DATE_LEN 29
int fc_http_date_format(int64_t t, char *out);

/* ---- Range (RFC 9110 14.1.2) ----------------------------------------------
 * One satisfiable range, both ends inclusive: first <= last < size. */
typedef struct {
    uint64_t first;
    uint64_t last;
} fc_range_t;

#define FC_RANGE_IGNORE (-1)

/* Reads a Range field value for a representation of `size` bytes.
 * Returns:
 *   n > 0            n satisfiable ranges stored in `ranges`, in request
 *                    order; a last-pos past the end is clipped to size - 1,
 *                    a suffix range "-N" becomes the last N bytes (all of
 *                    them when N >= size); unsatisfiable members of a list
 *                    are dropped;
 *   0                syntactically valid but no range is satisfiable (416);
 *   FC_RANGE_IGNORE  not a valid "bytes=" range set (another unit, bad
 *                    syntax, first > last, a number greater than 2^63, no
 *                    range at all) or more than `max` ranges listed
 *                    (satisfiable or not; empty elements do not count):
 *                    the caller serves the whole representation.
 * The unit name is case-insensitive and is followed by '=' directly. OWS
 * around the value, after '=', around commas and empty list elements
 * (", ,") are allowed; whitespace inside a range-spec is not. `ranges`
 * needs room for `max` entries; its contents are unspecified on IGNORE. */
int fc_range_parse(const char *s, size_t len, uint64_t size, fc_range_t *ranges, int max);

/* ---- entity tags (RFC 9110 8.8.3, 13.1.1, 13.1.2) --------------------------
 * Whether a field value of If-Match / If-None-Match / If-Range (a list of
 * entity tags, or "*") matches `etag` (the full tag as sent, quotes
 * included, with "W/" for a weak one).
 * weak = 0: strong comparison (both tags strong and the opaque-tags equal);
 * weak = 1: weak comparison (opaque-tags equal, W/ ignored on both sides).
 * Returns 1 if "*" or a listed tag matches, 0 if none does, -1 if the
 * value is not a valid list (the caller ignores the field): "*" must stand
 * alone, "W/" is case-sensitive, a list with no tag is invalid, and the
 * whole value is checked even after a match. */
int fc_etag_match(const char *field, size_t len, const char *etag, size_t etag_len, int weak);

/* ---- Accept-Encoding (RFC 9110 12.5.3) ------------------------------------ */
#define FC_ENC_GZIP 1u
#define FC_ENC_BR 2u

/* The content codings among gzip and br that the field value accepts: a
 * coding listed with q > 0, or covered by "*" with q > 0 and not listed
 * with q=0. "x-gzip" counts as gzip. Names are case-insensitive; a member
 * that does not parse (a bad qvalue, a parameter other than q) is skipped.
 * A coding listed both with q=0 and with q>0 is not accepted. OWS is
 * allowed around ';' and '='. Returns a mask of FC_ENC_* bits. */
unsigned fc_accept_encoding(const char *field, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* FC_STATIC_H */
