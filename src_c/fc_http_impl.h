/* fc_http_impl.h: the head parser body, compiled once per SIMD level.
 *
 * fc_http.c includes this file several times with these defined:
 *   FC_NAME(n)      suffixes a function name with the level (n##_avx2, ...)
 *   FC_ATTR         the function attribute of the level (target("avx2"), ...)
 *   FC_SCAN_TARGET  first byte at or after p not in 0x21-0x7e or that is '#', or end
 *   FC_SCAN_VALUE   first byte at or after p that is a CTL other than HTAB, or DEL, or end
 *   FC_SCAN_TOKEN   first byte at or after p that is not a tchar, or end
 * so each level gets the scanners inlined instead of an indirect call per field.
 *
 * Every scanner and loop here reads only bytes in [buf, end): the vector
 * scanners load a full vector only while that many bytes remain, which is
 * what the guard-page tests in src_c/tests check.
 */

/* Header fields up to and including the blank line. `hend` is the end of
 * what may be examined: min(end of data, start + size limit). Sets
 * *next past the blank line and returns 0, or returns PARTIAL (ran out of
 * bytes at hend) or INVALID with *error set. */
FC_ATTR static int FC_NAME(parse_fields)(const char *p, const char *hend,
                                         fc_header_t *headers, size_t *num_headers,
                                         const char **next, fc_http_error_t *error)
{
    size_t n = 0, cap = *num_headers;
    for (;;) {
        if (p == hend)
            goto runout;
        if (*p == '\r') {
            if (p + 1 == hend)
                goto runout;
            if (p[1] != '\n') {
                *error = FC_ERR_BARE_CR;
                return FC_HTTP_INVALID;
            }
            *next = p + 2;
            *num_headers = n;
            return 0;
        }
        if (*p == '\n') {
            *error = FC_ERR_BARE_LF;
            return FC_HTTP_INVALID;
        }
        if (*p == ' ' || *p == '\t') {
            /* RFC 9112 5.2: obs-fold; also whitespace right after the start line (2.2) */
            *error = FC_ERR_OBS_FOLD;
            return FC_HTTP_INVALID;
        }
        if (n == cap) {
            *error = FC_ERR_TOO_MANY_HEADERS;
            return FC_HTTP_INVALID;
        }
        /* field-name = token (RFC 9110 5.1) */
        const char *name = p;
        p = FC_SCAN_TOKEN(p, hend);
        if (p == hend)
            goto runout;
        if (*p != ':') {
            /* RFC 9112 5.1: no whitespace between field name and colon */
            *error = (*p == ' ' || *p == '\t') ? FC_ERR_HEADER_SPACE : FC_ERR_HEADER_NAME;
            return FC_HTTP_INVALID;
        }
        if (p == name) {
            *error = FC_ERR_HEADER_NAME;
            return FC_HTTP_INVALID;
        }
        headers[n].name.at = name;
        headers[n].name.len = (size_t)(p - name);
        ++p;
        /* field-line = field-name ":" OWS field-value OWS */
        while (p < hend && (*p == ' ' || *p == '\t'))
            ++p;
        const char *value = p;
        p = FC_SCAN_VALUE(p, hend);
        if (p == hend)
            goto runout;
        if (*p != '\r') {
            *error = (*p == '\n') ? FC_ERR_BARE_LF : FC_ERR_HEADER_VALUE;
            return FC_HTTP_INVALID;
        }
        if (p + 1 == hend)
            goto runout;
        if (p[1] != '\n') {
            *error = FC_ERR_BARE_CR;
            return FC_HTTP_INVALID;
        }
        const char *value_end = p;
        while (value_end > value && (value_end[-1] == ' ' || value_end[-1] == '\t'))
            --value_end;
        headers[n].value.at = value;
        headers[n].value.len = (size_t)(value_end - value);
        ++n;
        p += 2;
    }
runout:
    *num_headers = n;
    return FC_HTTP_PARTIAL;
}

FC_ATTR static int FC_NAME(parse_request)(const char *buf, size_t len,
                                          const fc_http_limits_t *limits,
                                          fc_request_head_t *req)
{
    const char *end = buf + len;
    const char *head_limit = len > limits->max_header_bytes ? buf + limits->max_header_bytes : end;
    const char *p = buf;

    /* RFC 9112 2.2: ignore empty lines before the request line; they count
     * toward the head size limit so they cannot grow the buffer forever. */
    while (head_limit - p >= 2 && p[0] == '\r' && p[1] == '\n')
        p += 2;

    if (p < head_limit && *p == '\r') {
        if (p + 1 == head_limit)
            goto runout_head; /* the LF of an empty line may follow */
        req->error = FC_ERR_BARE_CR;
        return FC_HTTP_INVALID;
    }

    const char *line = p;
    const char *line_limit = (size_t)(head_limit - line) > limits->max_request_line
                                 ? line + limits->max_request_line
                                 : head_limit;

    /* method = token */
    p = FC_SCAN_TOKEN(p, line_limit);
    if (p == line_limit)
        goto runout_line;
    if (*p != ' ' || p == line) {
        req->error = (*p == '\n') ? FC_ERR_BARE_LF : FC_ERR_METHOD;
        return FC_HTTP_INVALID;
    }
    req->method.at = line;
    req->method.len = (size_t)(p - line);
    ++p;

    /* request-target: visible ASCII up to the single SP. No form of it has
     * a fragment (RFC 9112 3.2: origin-form = absolute-path [ "?" query ];
     * absolute-URI has none either, RFC 3986 4.3), so '#' is refused, not
     * cut, as the grammar implies: cutting would hand on a target that
     * differs from the one a cache or a proxy before us saw. The scanner
     * stops at '#' for one compare more per vector. */
    const char *target = p;
    p = FC_SCAN_TARGET(p, line_limit);
    if (p == line_limit)
        goto runout_line;
    if (*p != ' ') {
        req->error = (*p == '\r' || *p == '\n') ? FC_ERR_REQUEST_LINE
                     : *p == '#'                ? FC_ERR_TARGET_FRAGMENT
                                                : FC_ERR_TARGET;
        return FC_HTTP_INVALID;
    }
    if (p == target) {
        req->error = FC_ERR_REQUEST_LINE; /* two spaces in a row */
        return FC_HTTP_INVALID;
    }
    req->target.at = target;
    req->target.len = (size_t)(p - target);
    ++p;

    /* HTTP-version = "HTTP/" DIGIT "." DIGIT, then CRLF */
    if (line_limit - p < 10) {
        /* reject early what can never become a version */
        static const char prefix[] = "HTTP/";
        size_t have = (size_t)(line_limit - p);
        for (size_t i = 0; i < have && i < 5; ++i) {
            if (p[i] != prefix[i]) {
                req->error = FC_ERR_VERSION;
                return FC_HTTP_INVALID;
            }
        }
        goto runout_line;
    }
    if (memcmp(p, "HTTP/1.", 7) == 0 && (p[7] == '1' || p[7] == '0')) {
        req->minor_version = p[7] - '0';
    } else if (memcmp(p, "HTTP/", 5) == 0 && fc_is_digit(p[5]) && p[6] == '.' && fc_is_digit(p[7])) {
        req->error = FC_ERR_VERSION_UNSUPPORTED;
        return FC_HTTP_INVALID;
    } else {
        req->error = FC_ERR_VERSION;
        return FC_HTTP_INVALID;
    }
    p += 8;
    if (p[0] != '\r') {
        req->error = p[0] == '\n' ? FC_ERR_BARE_LF
                     : p[0] == ' ' ? FC_ERR_REQUEST_LINE
                                   : FC_ERR_VERSION;
        return FC_HTTP_INVALID;
    }
    if (p[1] != '\n') {
        req->error = FC_ERR_BARE_CR;
        return FC_HTTP_INVALID;
    }
    p += 2;

    const char *next;
    int rc = FC_NAME(parse_fields)(p, head_limit, req->headers, &req->num_headers, &next, &req->error);
    if (rc == FC_HTTP_PARTIAL)
        goto runout_head;
    if (rc != 0)
        return rc;
    return (int)(next - buf);

runout_line:
    /* ran out inside the request line: too long, or just not all here yet */
    if (line_limit < head_limit || (size_t)(line_limit - line) >= limits->max_request_line) {
        req->error = FC_ERR_LINE_TOO_LONG;
        return FC_HTTP_INVALID;
    }
runout_head:
    if (head_limit < end || len >= limits->max_header_bytes) {
        req->error = FC_ERR_HEAD_TOO_LARGE;
        return FC_HTTP_INVALID;
    }
    return FC_HTTP_PARTIAL;
}

FC_ATTR static int FC_NAME(parse_response)(const char *buf, size_t len,
                                           const fc_http_limits_t *limits,
                                           fc_response_head_t *resp)
{
    const char *end = buf + len;
    const char *head_limit = len > limits->max_header_bytes ? buf + limits->max_header_bytes : end;
    const char *p = buf;

    /* status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF
     * (RFC 9112 4; a missing SP before an empty reason is tolerated) */
    if (head_limit - p < 12) {
        static const char prefix[] = "HTTP/";
        for (size_t i = 0; i < (size_t)(head_limit - p) && i < 5; ++i) {
            if (p[i] != prefix[i]) {
                resp->error = FC_ERR_VERSION;
                return FC_HTTP_INVALID;
            }
        }
        goto runout_head;
    }
    if (memcmp(p, "HTTP/1.", 7) != 0 || !fc_is_digit(p[7])) {
        resp->error = FC_ERR_VERSION;
        return FC_HTTP_INVALID;
    }
    resp->minor_version = p[7] - '0';
    if (p[8] != ' ' || !fc_is_digit(p[9]) || !fc_is_digit(p[10]) || !fc_is_digit(p[11])) {
        resp->error = FC_ERR_STATUS;
        return FC_HTTP_INVALID;
    }
    resp->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if (resp->status < 100) {
        resp->error = FC_ERR_STATUS;
        return FC_HTTP_INVALID;
    }
    p += 12;
    if (p == head_limit)
        goto runout_head;
    if (*p == ' ')
        ++p;
    else if (*p != '\r') {
        resp->error = FC_ERR_STATUS;
        return FC_HTTP_INVALID;
    }
    const char *reason = p;
    p = FC_SCAN_VALUE(p, head_limit);
    if (p + 1 >= head_limit)
        goto runout_head;
    if (p[0] != '\r' || p[1] != '\n') {
        resp->error = p[0] == '\n' ? FC_ERR_BARE_LF : p[0] == '\r' ? FC_ERR_BARE_CR : FC_ERR_STATUS;
        return FC_HTTP_INVALID;
    }
    resp->reason.at = reason;
    resp->reason.len = (size_t)(p - reason);
    p += 2;

    const char *next;
    int rc = FC_NAME(parse_fields)(p, head_limit, resp->headers, &resp->num_headers, &next, &resp->error);
    if (rc == FC_HTTP_PARTIAL)
        goto runout_head;
    if (rc != 0)
        return rc;
    return (int)(next - buf);

runout_head:
    if (head_limit < end || len >= limits->max_header_bytes) {
        resp->error = FC_ERR_HEAD_TOO_LARGE;
        return FC_HTTP_INVALID;
    }
    return FC_HTTP_PARTIAL;
}
