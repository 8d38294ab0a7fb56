/* fc_realip: who the client is, plain C, no allocation. Behind a CDN or a
 * balancer the socket's peer is the proxy; the client is in a forwarding
 * field the proxy wrote. A field is believed only as far as the hops that
 * wrote it are trusted (nginx's real_ip_recursive):
 *
 *   peer trusted?  no  -> the client is the peer (its fields are ignored)
 *                  yes -> walk the field's addresses from the right (the
 *                         last hop) to the left; the client is the first
 *                         address that is not trusted, or the leftmost when
 *                         all are, or the last good one when an entry is
 *                         not an address ("unknown", an obfuscated node).
 *
 * Addresses are 16 bytes, IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d), so one
 * comparison serves both families. Fields are pointer + length, not NUL
 * terminated. */
#ifndef FC_REALIP_H
#define FC_REALIP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint8_t addr[16];   /* the network, host bits zero */
    uint8_t bits;       /* prefix length over the 16 bytes (IPv4 /n is 96 + n) */
} fc_cidr_t;

typedef enum {
    FC_REALIP_X_FORWARDED_FOR = 1,  /* X-Forwarded-For: a, b, c */
    FC_REALIP_X_REAL_IP,            /* X-Real-IP: one address */
    FC_REALIP_CF_CONNECTING_IP,     /* CF-Connecting-IP: one address */
    FC_REALIP_FORWARDED             /* RFC 7239 Forwarded: for=a, for="[b]:port";proto=https */
} fc_realip_kind_t;

/* 1 if addr is an IPv4-mapped address (an IPv4 client). */
static inline int fc_addr_is_v4(const uint8_t addr[16])
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    for (int i = 0; i < 12; ++i)
        if (addr[i] != mapped[i])
            return 0;
    return 1;
}

/* Parses one address: dotted IPv4, IPv6 (optionally in brackets, as
 * RFC 7239 writes it), each optionally followed by ":port" (IPv4) or after
 * the bracket (IPv6), optional whitespace around. Returns 0 and fills out,
 * or -1 when the text is not an address. */
int fc_addr_parse(const char *at, size_t len, uint8_t out[16]);

/* Parses "ADDR" or "ADDR/BITS" (IPv4 or IPv6) into a network, host bits
 * cleared. Returns 0, or -1 when the text is not a network. */
int fc_cidr_parse(const char *at, size_t len, fc_cidr_t *out);

/* 1 if addr lies in one of the n networks of set, else 0 (n may be 0). */
int fc_cidr_contains(const fc_cidr_t *set, size_t n, const uint8_t addr[16]);

/* One step of the walk above, over one field's value, for a caller that
 * holds several fields of the same name: it calls this for each, the last
 * field first. client holds the address found so far (the peer at the
 * start) and is updated. Returns 1 when the walk is over (an untrusted
 * address or a bad entry was met), 0 when every address of this value was
 * trusted and the walk goes on with the field before it. */
int fc_realip_walk(fc_realip_kind_t kind, const char *value, size_t len, const fc_cidr_t *trusted,
                   size_t n_trusted, uint8_t client[16]);

/* The scheme an X-Forwarded-Proto value names, the last hop's word (the
 * rightmost element): FC_PROTO_HTTP, FC_PROTO_HTTPS, or 0 for anything else. */
#define FC_PROTO_HTTP 1
#define FC_PROTO_HTTPS 2
int fc_forwarded_proto(const char *value, size_t len);

/* The text of addr (IPv4 dotted for a mapped address), NUL terminated, in
 * out of size >= 46. Returns its length. */
size_t fc_addr_format(const uint8_t addr[16], char *out, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* FC_REALIP_H */
