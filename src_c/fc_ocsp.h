/* fc_ocsp: the OCSP side of stapling (RFC 6960; RFC 6066 section 8): the
 * request that asks a responder for a server certificate's status, the
 * check of its answer before any client sees it, and the store into the
 * shared fc_tls_staple_t the workers staple from (fc_tls.c reads it).
 *
 * No network here: the arbiter fetches (fastcore/stapling.py) and hands
 * the bytes over. Each call reads the certificate file again, since a
 * reload may have changed it: the first certificate in it is the server's,
 * and its issuer must follow it (the full chain, as servers send it).
 */
#ifndef FC_OCSP_H
#define FC_OCSP_H

#include <stddef.h>
#include <stdint.h>

#include "fc_tls.h"

#ifdef __cplusplus
extern "C" {
#endif

/* the status of the certificate in a response (fc_tls_staple_t.status) */
#define FC_OCSP_GOOD    0
#define FC_OCSP_REVOKED 1
#define FC_OCSP_UNKNOWN 2

/* The DER request for the status of certfile's certificate, into *der
 * (malloc'd, the caller frees it), and the certificate's first OCSP
 * responder URL into url (NUL-terminated; empty when it names none).
 * Returns 0, or -1 with a one-line reason in err. */
int fc_ocsp_request(const char *certfile, unsigned char **der, size_t *len, char *url, size_t urllen,
                    char *err, size_t errlen);

/* Whether der is a response fit to staple to certfile's certificate: a
 * successful response, signed by the certificate's issuer (or by a
 * responder the issuer delegated to), naming this certificate, current
 * (thisUpdate passed, nextUpdate not, five minutes of clock skew allowed).
 * Returns 0 with *status (FC_OCSP_*) and *expires (the nextUpdate in Unix
 * seconds, 0 when it names none), or -1 with a one-line reason in err. */
int fc_ocsp_check(const char *certfile, const unsigned char *der, size_t len, int *status, int64_t *expires,
                  char *err, size_t errlen);

/* Writes a response into the shared staple (len 0: nothing to staple).
 * Returns -1 when it is longer than FC_TLS_STAPLE_MAX (nothing written). */
int fc_ocsp_store(fc_tls_staple_t *staple, const unsigned char *der, size_t len, int64_t expires, int status);

#ifdef __cplusplus
}
#endif

#endif /* FC_OCSP_H */
