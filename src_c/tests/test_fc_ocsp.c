/* Tests of fc_ocsp under ASan/UBSan: a CA and a server certificate it signs
 * (naming an OCSP responder) are made here, responses are signed here as a
 * responder would, and fc_ocsp must build the request, take the good
 * responses and refuse the others, leaking nothing. */
#define _GNU_SOURCE
#include "fc_test.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "fc_ocsp.h"

static char dir[] = "/tmp/fc_ocsp_test_XXXXXX";

static const char *file(const char *name) { return path_in(dir, name); }

static X509 *make_cert(const char *cn, long serial, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
                       const char *aia)
{
    X509 *cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), serial);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(cert, X509_get_subject_name(issuer ? issuer : cert));
    if (aia != NULL) {
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, NULL, NID_info_access, aia);
        X509_add_ext(cert, ext, -1);
        X509_EXTENSION_free(ext);
    }
    X509_sign(cert, issuer_key ? issuer_key : key, EVP_sha256());
    return cert;
}

static void write_pem(const char *name, X509 *first, X509 *second)
{
    FILE *f = fopen(file(name), "w");
    PEM_write_X509(f, first);
    if (second != NULL)
        PEM_write_X509(f, second);
    fclose(f);
}

/* A DER response about cert (issued by ca), signed by signer/key. */
static size_t make_response(X509 *cert, X509 *ca, X509 *signer, EVP_PKEY *key, int status, long next_seconds,
                            unsigned char **der)
{
    OCSP_BASICRESP *basic = OCSP_BASICRESP_new();
    OCSP_CERTID *id = OCSP_cert_to_id(NULL, cert, ca);
    ASN1_TIME *now = X509_gmtime_adj(NULL, 0);
    ASN1_TIME *next = X509_gmtime_adj(NULL, next_seconds);
    OCSP_RESPONSE *response;
    int n;
    OCSP_basic_add1_status(basic, id, status, status == V_OCSP_CERTSTATUS_REVOKED ? OCSP_REVOKED_STATUS_KEYCOMPROMISE : 0,
                           status == V_OCSP_CERTSTATUS_REVOKED ? now : NULL, now, next);
    OCSP_basic_sign(basic, signer, key, EVP_sha256(), NULL, 0);
    response = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, basic);
    *der = NULL;
    n = i2d_OCSP_RESPONSE(response, der);
    OCSP_RESPONSE_free(response);
    OCSP_BASICRESP_free(basic);
    OCSP_CERTID_free(id);
    ASN1_TIME_free(now);
    ASN1_TIME_free(next);
    return n > 0 ? (size_t)n : 0;
}

int main(void)
{
    EVP_PKEY *ca_key, *server_key, *other_key;
    X509 *ca, *server, *other, *sibling;
    unsigned char *request, *response;
    size_t len, response_len;
    char url[256], err[512];
    int status;
    int64_t expires;
    fc_tls_staple_t *staple;
    const unsigned char *p;
    OCSP_REQUEST *parsed;
    guarded_t guarded;

    CHECK(mkdtemp(dir) != NULL, "a temporary directory");
    ca_key = EVP_EC_gen("P-256");
    server_key = EVP_EC_gen("P-256");
    other_key = EVP_EC_gen("P-256");
    ca = make_cert("test CA", 1, ca_key, NULL, NULL, NULL);
    other = make_cert("another CA", 1, other_key, NULL, NULL, NULL);
    server = make_cert("localhost", 2, server_key, ca, ca_key, "OCSP;URI:http://127.0.0.1:8888/ocsp");
    sibling = make_cert("sibling", 3, server_key, ca, ca_key, NULL);
    write_pem("chain.pem", server, ca);
    write_pem("alone.pem", server, NULL);
    write_pem("wrong-chain.pem", server, other);

    /* the request: for the certificate in the file, to the URL it names */
    CHECK(fc_ocsp_request(file("chain.pem"), &request, &len, url, sizeof(url), err, sizeof(err)) == 0, err);
    CHECK(strcmp(url, "http://127.0.0.1:8888/ocsp") == 0, url);
    p = request;
    parsed = d2i_OCSP_REQUEST(NULL, &p, (long)len);
    CHECK(parsed != NULL && OCSP_request_onereq_count(parsed) == 1 && p == request + len, "a DER request for one id");
    OCSP_REQUEST_free(parsed);
    free(request);

    /* without the issuer after it: refused, with the reason */
    CHECK(fc_ocsp_request(file("alone.pem"), &request, &len, url, sizeof(url), err, sizeof(err)) == -1 &&
          strstr(err, "holds no certificate of its issuer") != NULL && request == NULL, err);
    CHECK(fc_ocsp_request(file("wrong-chain.pem"), &request, &len, url, sizeof(url), err, sizeof(err)) == -1,
          "another CA after it is not the issuer");
    CHECK(fc_ocsp_request(file("missing.pem"), &request, &len, url, sizeof(url), err, sizeof(err)) == -1 &&
          strstr(err, "cannot read") != NULL, err);

    /* a good response signed by the CA: taken, with its nextUpdate */
    response_len = make_response(server, ca, ca, ca_key, V_OCSP_CERTSTATUS_GOOD, 3600, &response);
    CHECK(fc_ocsp_check(file("chain.pem"), response, response_len, &status, &expires, err, sizeof(err)) == 0, err);
    CHECK(status == FC_OCSP_GOOD, "good");
    CHECK(expires > (int64_t)time(NULL) + 3500 && expires <= (int64_t)time(NULL) + 3600, "nextUpdate in an hour");

    /* stored for the workers: the seqlock ends even, the bytes are there */
    staple = calloc(1, sizeof(*staple));
    CHECK(fc_ocsp_store(staple, response, response_len, expires, status) == 0, "stored");
    CHECK(staple->seq == 2 && staple->len == response_len && memcmp(staple->der, response, response_len) == 0 &&
          staple->expires == expires && staple->fetched > 0, "the staple holds the response");
    CHECK(fc_ocsp_store(staple, response, FC_TLS_STAPLE_MAX + 1, expires, status) == -1 && staple->seq == 2 &&
          staple->len == response_len, "too long: nothing written");
    CHECK(fc_ocsp_store(staple, NULL, 0, 0, 0) == 0 && staple->len == 0 && staple->seq == 4, "emptied");
    free(staple);

    /* a truncated one: not a response (read from a buffer that ends at a
     * guard page: no byte past it is read) */
    guarded = guarded_copy((const char *)response, response_len - 1);
    CHECK(fc_ocsp_check(file("chain.pem"), (const unsigned char *)guarded.data, response_len - 1, &status, &expires, err,
                        sizeof(err)) == -1 && strstr(err, "not an OCSP response") != NULL, err);
    guarded_free(guarded);
    OPENSSL_free(response);

    /* signed by another key: refused */
    response_len = make_response(server, ca, other, other_key, V_OCSP_CERTSTATUS_GOOD, 3600, &response);
    CHECK(fc_ocsp_check(file("chain.pem"), response, response_len, &status, &expires, err, sizeof(err)) == -1 &&
          strstr(err, "its signature is not the issuer's") != NULL, err);
    OPENSSL_free(response);

    /* about another certificate of the same CA: refused */
    response_len = make_response(sibling, ca, ca, ca_key, V_OCSP_CERTSTATUS_GOOD, 3600, &response);
    CHECK(fc_ocsp_check(file("chain.pem"), response, response_len, &status, &expires, err, sizeof(err)) == -1 &&
          strstr(err, "does not name the certificate") != NULL, err);
    OPENSSL_free(response);

    /* out of date: refused */
    response_len = make_response(server, ca, ca, ca_key, V_OCSP_CERTSTATUS_GOOD, -3600, &response);
    CHECK(fc_ocsp_check(file("chain.pem"), response, response_len, &status, &expires, err, sizeof(err)) == -1 &&
          strstr(err, "out of date") != NULL, err);
    OPENSSL_free(response);

    /* revoked: taken, as revoked */
    response_len = make_response(server, ca, ca, ca_key, V_OCSP_CERTSTATUS_REVOKED, 3600, &response);
    CHECK(fc_ocsp_check(file("chain.pem"), response, response_len, &status, &expires, err, sizeof(err)) == 0 &&
          status == FC_OCSP_REVOKED, err);
    OPENSSL_free(response);

    X509_free(ca);
    X509_free(other);
    X509_free(server);
    X509_free(sibling);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(server_key);
    EVP_PKEY_free(other_key);
    unlink(file("chain.pem"));
    unlink(file("alone.pem"));
    unlink(file("wrong-chain.pem"));
    rmdir(dir);
    printf("fc_ocsp: %d checks, %d failures\n", checks, failures);
    return failures != 0;
}
