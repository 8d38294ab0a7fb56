/* fc_ocsp: OCSP requests and the check of responses for stapling (see fc_ocsp.h). */
#define _GNU_SOURCE
#include "fc_ocsp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* clock skew allowed between the responder and us (seconds), as `openssl ocsp` */
#define SKEW 300

/* The certificates of certfile: the server's first, then its chain; *issuer
 * is the one among them that signed the server's (not owned: it stays in
 * the chain). */
static int load_chain(const char *certfile, STACK_OF(X509) **chain, X509 **issuer, char *err, size_t errlen) {
    BIO *bio;
    X509 *cert;
    int i;
    ERR_clear_error();
    bio = BIO_new_file(certfile, "r");
    if (bio == NULL) {
        snprintf(err, errlen, "cannot read %s: %s", certfile, strerror(errno));
        ERR_clear_error();
        return -1;
    }
    *chain = sk_X509_new_null();
    while (*chain != NULL && (cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        if (!sk_X509_push(*chain, cert)) {
            X509_free(cert);
            break;
        }
    }
    BIO_free(bio);
    ERR_clear_error();
    if (*chain == NULL || sk_X509_num(*chain) == 0) {
        snprintf(err, errlen, "%s holds no PEM certificate", certfile);
        sk_X509_free(*chain);
        return -1;
    }
    *issuer = NULL;
    for (i = 1; i < sk_X509_num(*chain); i++) {
        if (X509_check_issued(sk_X509_value(*chain, i), sk_X509_value(*chain, 0)) == X509_V_OK) {
            *issuer = sk_X509_value(*chain, i);
            break;
        }
    }
    if (*issuer == NULL) {
        snprintf(err, errlen, "%s holds no certificate of its issuer after the server's "
                 "(stapling needs the full chain, as servers send it)", certfile);
        sk_X509_pop_free(*chain, X509_free);
        return -1;
    }
    return 0;
}

int fc_ocsp_request(const char *certfile, unsigned char **der, size_t *len, char *url, size_t urllen,
                    char *err, size_t errlen) {
    STACK_OF(X509) *chain;
    STACK_OF(OPENSSL_STRING) *urls;
    X509 *issuer;
    OCSP_CERTID *id;
    OCSP_REQUEST *request;
    unsigned char *out = NULL;
    int n;
    *der = NULL;
    *len = 0;
    if (load_chain(certfile, &chain, &issuer, err, errlen) != 0)
        return -1;
    url[0] = 0;
    urls = X509_get1_ocsp(sk_X509_value(chain, 0));
    if (urls != NULL && sk_OPENSSL_STRING_num(urls) > 0)
        snprintf(url, urllen, "%s", sk_OPENSSL_STRING_value(urls, 0));
    X509_email_free(urls);
    request = OCSP_REQUEST_new();
    id = OCSP_cert_to_id(NULL, sk_X509_value(chain, 0), issuer);
    /* no nonce: responders answer from responses made in advance (RFC 5019) */
    if (request == NULL || id == NULL || OCSP_request_add0_id(request, id) == NULL) {
        OCSP_CERTID_free(id);
        OCSP_REQUEST_free(request);
        sk_X509_pop_free(chain, X509_free);
        fc_tls_openssl_reason(err, errlen, "cannot make an OCSP request");
        return -1;
    }
    n = i2d_OCSP_REQUEST(request, &out);
    OCSP_REQUEST_free(request);  /* and the id it holds */
    sk_X509_pop_free(chain, X509_free);
    if (n <= 0) {
        fc_tls_openssl_reason(err, errlen, "cannot encode an OCSP request");
        return -1;
    }
    *der = malloc((size_t)n);
    if (*der == NULL) {
        OPENSSL_free(out);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(*der, out, (size_t)n);
    OPENSSL_free(out);
    *len = (size_t)n;
    return 0;
}

/* an ASN.1 time as Unix seconds */
static int64_t unix_time(const ASN1_GENERALIZEDTIME *when) {
    int days = 0, seconds = 0;
    time_t now = time(NULL);
    if (!ASN1_TIME_diff(&days, &seconds, NULL, when))
        return 0;
    return (int64_t)now + (int64_t)days * 86400 + seconds;
}

int fc_ocsp_check(const char *certfile, const unsigned char *der, size_t len, int *status, int64_t *expires,
                  char *err, size_t errlen) {
    STACK_OF(X509) *chain;
    X509 *issuer;
    const unsigned char *p = der;
    OCSP_RESPONSE *response = NULL;
    OCSP_BASICRESP *basic = NULL;
    OCSP_CERTID *id = NULL;
    X509_STORE *store = NULL;
    ASN1_GENERALIZEDTIME *revoked_at, *this_update, *next_update;
    int code, reason, rc = -1;
    if (load_chain(certfile, &chain, &issuer, err, errlen) != 0)
        return -1;
    ERR_clear_error();
    response = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
    if (response == NULL || p != der + len) {
        snprintf(err, errlen, "not an OCSP response (DER)");
        goto done;
    }
    code = OCSP_response_status(response);
    if (code != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        snprintf(err, errlen, "the responder answered %s", OCSP_response_status_str(code));
        goto done;
    }
    basic = OCSP_response_get1_basic(response);
    if (basic == NULL) {
        snprintf(err, errlen, "not a basic OCSP response");
        goto done;
    }
    /* trust the issuer alone: the response must come from the CA that
     * signed our certificate, or from a responder it delegated to */
    store = X509_STORE_new();
    if (store == NULL || !X509_STORE_add_cert(store, issuer) ||
        !X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN)) {
        fc_tls_openssl_reason(err, errlen, "cannot check an OCSP response");
        goto done;
    }
    if (OCSP_basic_verify(basic, chain, store, 0) <= 0) {
        fc_tls_openssl_reason(err, errlen, "its signature is not the issuer's");
        goto done;
    }
    id = OCSP_cert_to_id(NULL, sk_X509_value(chain, 0), issuer);
    if (id == NULL || !OCSP_resp_find_status(basic, id, &code, &reason, &revoked_at, &this_update, &next_update)) {
        snprintf(err, errlen, "it does not name the certificate in %s", certfile);
        goto done;
    }
    if (!OCSP_check_validity(this_update, next_update, SKEW, -1)) {
        snprintf(err, errlen, "it is out of date (or not yet valid)");
        goto done;
    }
    *status = code == V_OCSP_CERTSTATUS_GOOD ? FC_OCSP_GOOD :
              code == V_OCSP_CERTSTATUS_REVOKED ? FC_OCSP_REVOKED : FC_OCSP_UNKNOWN;
    *expires = next_update != NULL ? unix_time(next_update) : 0;
    rc = 0;
done:
    ERR_clear_error();
    OCSP_CERTID_free(id);
    X509_STORE_free(store);
    OCSP_BASICRESP_free(basic);
    OCSP_RESPONSE_free(response);
    sk_X509_pop_free(chain, X509_free);
    return rc;
}

int fc_ocsp_store(fc_tls_staple_t *staple, const unsigned char *der, size_t len, int64_t expires, int status) {
    uint32_t seq = staple->seq;
    if (len > FC_TLS_STAPLE_MAX)
        return -1;
    /* the seqlock's writer (one: the arbiter); readers are in fc_tls.c */
    __atomic_store_n(&staple->seq, seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    if (len)
        memcpy(staple->der, der, len);
    staple->len = (uint32_t)len;
    staple->expires = expires;
    staple->status = status;
    if (len)
        staple->fetched = (int64_t)time(NULL);
    __atomic_store_n(&staple->seq, seq + 2, __ATOMIC_RELEASE);
    return 0;
}
