/* fc_forward: the byte-level decisions of forwarding a message through a
 * proxy, plain C, no allocation: what a header field is to a proxy, and
 * whether a Connection field names it. The proxy (fastcore/_core/proxy.pyx)
 * decides what to do with each kind.
 *
 * Names and values are pointer + length, not NUL terminated.
 */
#ifndef FC_FORWARD_H
#define FC_FORWARD_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    FC_FIELD_END_TO_END = 0,    /* passed on as it is */
    FC_FIELD_HOP_BY_HOP,        /* RFC 9110 7.6.1: Keep-Alive, TE, Trailer, Transfer-Encoding, Proxy-* */
    FC_FIELD_CONNECTION,        /* Connection: hop-by-hop, and names more hop-by-hop fields */
    FC_FIELD_UPGRADE,           /* Upgrade: hop-by-hop unless the proxy tunnels */
    FC_FIELD_HOST,              /* Host: the proxy decides what goes on */
    FC_FIELD_CONTENT_LENGTH,    /* framing: the proxy writes its own */
    FC_FIELD_EXPECT,            /* Expect: answered by the proxy itself */
    FC_FIELD_X_FORWARDED_FOR,
    FC_FIELD_X_FORWARDED_PROTO,
    FC_FIELD_X_FORWARDED_HOST,
    FC_FIELD_X_REAL_IP,
    FC_FIELD_FORWARDED          /* RFC 7239: trusted like the X-Forwarded-* fields */
} fc_field_kind_t;

/* What the field named [name, name + len) is to a proxy (case-insensitive). */
fc_field_kind_t fc_field_kind(const char *name, size_t len);

/* Non-zero when the comma-separated token list [list, list + list_len) (a
 * Connection field's value, optional whitespace around each token) names
 * [name, name + name_len), case-insensitively. */
int fc_list_names(const char *list, size_t list_len, const char *name, size_t name_len);

#ifdef __cplusplus
}
#endif

#endif /* FC_FORWARD_H */
