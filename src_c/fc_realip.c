/* fc_realip.c: see fc_realip.h. */
#define _POSIX_C_SOURCE 200809L
#include "fc_realip.h"

#include <arpa/inet.h>
#include <string.h>

/* the longest text an address can take, brackets and port included */
#define FC_ADDR_TEXT_MAX 64

static int is_space(char c) { return c == ' ' || c == '\t'; }

static void trim(const char **at, size_t *len)
{
    while (*len && is_space(**at)) {
        ++*at;
        --*len;
    }
    while (*len && is_space((*at)[*len - 1]))
        --*len;
}

static int all_digits(const char *at, size_t len)
{
    if (len == 0 || len > 5)
        return 0;
    for (size_t i = 0; i < len; ++i)
        if (at[i] < '0' || at[i] > '9')
            return 0;
    return 1;
}

int fc_addr_parse(const char *at, size_t len, uint8_t out[16])
{
    char text[FC_ADDR_TEXT_MAX];
    trim(&at, &len);
    if (len == 0 || len >= sizeof(text))
        return -1;
    if (at[0] == '[') {
        /* [v6] or [v6]:port */
        const char *close = memchr(at, ']', len);
        if (close == NULL)
            return -1;
        size_t after = len - (size_t)(close - at) - 1;
        if (after && !(close[1] == ':' && all_digits(close + 2, after - 1)))
            return -1;
        len = (size_t)(close - at) - 1;
        memcpy(text, at + 1, len);
        text[len] = '\0';
        return inet_pton(AF_INET6, text, out) == 1 ? 0 : -1;
    }
    const char *colon = memchr(at, ':', len);
    if (colon != NULL && memchr(colon + 1, ':', len - (size_t)(colon - at) - 1) != NULL) {
        memcpy(text, at, len);  /* two colons or more: bare IPv6 */
        text[len] = '\0';
        return inet_pton(AF_INET6, text, out) == 1 ? 0 : -1;
    }
    if (colon != NULL) {
        /* a.b.c.d:port */
        if (!all_digits(colon + 1, len - (size_t)(colon - at) - 1))
            return -1;
        len = (size_t)(colon - at);
    }
    memcpy(text, at, len);
    text[len] = '\0';
    memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    return inet_pton(AF_INET, text, out + 12) == 1 ? 0 : -1;
}

int fc_cidr_parse(const char *at, size_t len, fc_cidr_t *out)
{
    const char *slash;
    unsigned bits;
    trim(&at, &len);
    slash = memchr(at, '/', len);
    if (fc_addr_parse(at, slash ? (size_t)(slash - at) : len, out->addr) != 0)
        return -1;
    /* a port is no part of a network */
    if (memchr(at, '[', slash ? (size_t)(slash - at) : len) != NULL)
        return -1;
    if (fc_addr_is_v4(out->addr) && memchr(at, ':', slash ? (size_t)(slash - at) : len) != NULL)
        return -1;
    unsigned most = fc_addr_is_v4(out->addr) ? 32 : 128;
    if (slash == NULL) {
        bits = most;
    } else {
        size_t n = len - (size_t)(slash - at) - 1;
        if (n == 0 || n > 3)
            return -1;
        bits = 0;
        for (size_t i = 0; i < n; ++i) {
            char c = slash[1 + i];
            if (c < '0' || c > '9')
                return -1;
            bits = bits * 10 + (unsigned)(c - '0');
        }
        if (bits > most)
            return -1;
    }
    if (most == 32)
        bits += 96;
    out->bits = (uint8_t)bits;
    for (unsigned i = 0; i < 16; ++i) {
        unsigned keep = bits >= 8 * (i + 1) ? 8 : bits > 8 * i ? bits - 8 * i : 0;
        out->addr[i] &= (uint8_t)(0xff00u >> keep);
    }
    return 0;
}

int fc_cidr_contains(const fc_cidr_t *set, size_t n, const uint8_t addr[16])
{
    for (size_t k = 0; k < n; ++k) {
        const fc_cidr_t *net = &set[k];
        unsigned whole = net->bits / 8, rest = net->bits % 8;
        if (memcmp(net->addr, addr, whole) != 0)
            continue;
        if (rest && ((addr[whole] ^ net->addr[whole]) & (uint8_t)(0xff00u >> rest)))
            continue;
        return 1;
    }
    return 0;
}

/* One address of the walk: 1 if the walk ends here. */
static int step(const char *at, size_t len, const fc_cidr_t *trusted, size_t n_trusted, uint8_t client[16])
{
    uint8_t addr[16];
    if (fc_addr_parse(at, len, addr) != 0)
        return 1;  /* not an address: the last good one is the client */
    memcpy(client, addr, 16);
    return !fc_cidr_contains(trusted, n_trusted, addr);
}

/* The node of an RFC 7239 element's for= pair, quotes removed: 0, or -1
 * when the element has none. Pairs are ';'-separated, names case-insensitive. */
static int forwarded_for(const char *at, size_t len, const char **node, size_t *node_len)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (is_space(at[i]) || at[i] == ';'))
            ++i;
        size_t name = i;
        while (i < len && at[i] != '=' && at[i] != ';')
            ++i;
        if (i >= len || at[i] != '=') {
            continue;
        }
        size_t name_len = i - name;
        ++i;
        size_t value = i;
        if (i < len && at[i] == '"') {
            ++i;
            value = i;
            while (i < len && at[i] != '"')
                i += at[i] == '\\' ? 2 : 1;
            if (i > len)
                i = len;
        } else {
            while (i < len && at[i] != ';')
                ++i;
        }
        size_t value_end = i;
        if (i < len && at[i] == '"')
            ++i;
        while (name_len && is_space(at[name + name_len - 1]))
            --name_len;
        if (name_len == 3 && (at[name] | 0x20) == 'f' && (at[name + 1] | 0x20) == 'o' &&
            (at[name + 2] | 0x20) == 'r') {
            *node = at + value;
            *node_len = value_end - value;
            return 0;
        }
    }
    return -1;
}

/* The end of the element that starts at `from`: the next ',' outside quotes. */
static size_t element_end(const char *at, size_t len, size_t from)
{
    int quoted = 0;
    for (size_t i = from; i < len; ++i) {
        if (at[i] == '"')
            quoted = !quoted;
        else if (at[i] == '\\' && quoted)
            ++i;
        else if (at[i] == ',' && !quoted)
            return i;
    }
    return len;
}

/* the rightmost elements a Forwarded value is walked over; a longer chain
 * than this is cut on the left (the walk stops at the first untrusted hop
 * long before, in any sane deployment) */
#define FC_FORWARDED_MAX 32

int fc_realip_walk(fc_realip_kind_t kind, const char *value, size_t len, const fc_cidr_t *trusted,
                   size_t n_trusted, uint8_t client[16])
{
    if (kind == FC_REALIP_X_FORWARDED_FOR) {
        size_t end = len;
        for (;;) {
            size_t start = end;
            while (start > 0 && value[start - 1] != ',')
                --start;
            const char *at = value + start;
            size_t n = end - start;
            trim(&at, &n);
            if (n) {  /* "a,,b" and a trailing comma have empty elements: skipped */
                if (step(at, n, trusted, n_trusted, client))
                    return 1;
            }
            if (start == 0)
                return 0;
            end = start - 1;
        }
    }
    if (kind == FC_REALIP_FORWARDED) {
        size_t starts[FC_FORWARDED_MAX], ends[FC_FORWARDED_MAX];
        size_t count = 0, i = 0;
        while (i <= len) {
            size_t end = element_end(value, len, i);
            starts[count % FC_FORWARDED_MAX] = i;
            ends[count % FC_FORWARDED_MAX] = end;
            ++count;
            i = end + 1;
        }
        size_t kept = count < FC_FORWARDED_MAX ? count : FC_FORWARDED_MAX;
        for (size_t k = 0; k < kept; ++k) {
            size_t slot = (count - 1 - k) % FC_FORWARDED_MAX;
            const char *at = value + starts[slot];
            size_t n = ends[slot] - starts[slot];
            const char *node;
            size_t node_len;
            trim(&at, &n);
            if (n == 0)
                continue;
            if (forwarded_for(at, n, &node, &node_len) != 0)
                return 1;
            if (step(node, node_len, trusted, n_trusted, client))
                return 1;
        }
        return count > FC_FORWARDED_MAX;
    }
    /* X-Real-IP, CF-Connecting-IP: one address, written by the last hop */
    step(value, len, trusted, n_trusted, client);
    return 1;
}

int fc_forwarded_proto(const char *value, size_t len)
{
    size_t start = len;
    while (start > 0 && value[start - 1] != ',')
        --start;
    const char *at = value + start;
    size_t n = len - start;
    trim(&at, &n);
    if (n < 4 || n > 5 || (at[0] | 0x20) != 'h' || (at[1] | 0x20) != 't' || (at[2] | 0x20) != 't' ||
        (at[3] | 0x20) != 'p')
        return 0;
    if (n == 4)
        return FC_PROTO_HTTP;
    return (at[4] | 0x20) == 's' ? FC_PROTO_HTTPS : 0;
}

size_t fc_addr_format(const uint8_t addr[16], char *out, size_t size)
{
    if (fc_addr_is_v4(addr)) {
        if (inet_ntop(AF_INET, addr + 12, out, (socklen_t)size) == NULL)
            return 0;
    } else if (inet_ntop(AF_INET6, addr, out, (socklen_t)size) == NULL) {
        return 0;
    }
    return strlen(out);
}
