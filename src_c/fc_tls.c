/* fc_tls: TLS over a non-blocking socket with OpenSSL (see fc_tls.h).
 *
 * OpenSSL owns the socket during each call (SSL_set_fd): it reads and
 * writes the descriptor itself, and reports what it waits for through
 * SSL_get_error. These settings carry this module:
 * - SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER: a
 *   write of one record either goes out or waits; its retry may come from
 *   another address (the scratch buffer, refilled) as long as it offers the
 *   same bytes, at least retry_len of them;
 * - SSL_MODE_RELEASE_BUFFERS: an idle keep-alive connection holds no
 *   34 KiB of OpenSSL buffers, as it holds no read buffer of ours;
 * - SSL_OP_IGNORE_UNEXPECTED_EOF: a client that closes without close_notify
 *   is an end of stream (HTTP frames its own messages), not an error;
 * - read ahead, on the server side: one read(2) takes what the socket holds
 *   (up to a record's buffer), where OpenSSL would otherwise read each
 *   record's 5-byte header and then its body, two calls a record (eight
 *   reads for a handshake and one request, where nginx, which reads ahead
 *   too, makes four). Whole records may then wait in OpenSSL's buffer,
 *   which SSL_pending does not count: fc_tls_pending asks SSL_has_pending,
 *   unless the last read found only part of a record there (drained).
 */
#define _GNU_SOURCE
#include "fc_tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

struct fc_tls_name {
    char *name;                 /* lower-case; "*.example.com" matches one label */
    SSL_CTX *ctx;
};

struct fc_tls_server {
    SSL_CTX *ctx;               /* the default certificate; the SNI callback lives here */
    struct fc_tls_name *names;
    size_t count;
    fc_tls_options_t options;   /* strings not owned: used only while adding names */
};

/* The loop is one thread: one buffer serves every connection's coalesced
 * writes and file reads (its content matters only during a call). */
static unsigned char scratch[FC_TLS_RECORD];

static void openssl_reason(char *err, size_t errlen, const char *what) {
    unsigned long code = ERR_peek_last_error();
    char reason[256];
    if (code) {
        ERR_error_string_n(code, reason, sizeof(reason));
        /* "error:0A00018E:SSL routines::ca md too weak": keep the words */
        const char *words = strrchr(reason, ':');
        snprintf(err, errlen, "%s: %s", what, words && words[1] ? words + 1 : reason);
    } else {
        snprintf(err, errlen, "%s", what);
    }
    ERR_clear_error();
}

void fc_tls_openssl_reason(char *err, size_t errlen, const char *what) {
    openssl_reason(err, errlen, what);
}

static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg) {
    /* http/1.1 only, today; h2 goes in front of it when the core speaks it */
    static const unsigned char ours[] = "\x08http/1.1";
    unsigned char *chosen;
    (void)ssl;
    (void)arg;
    if (SSL_select_next_proto(&chosen, outlen, ours, sizeof(ours) - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

/* OpenSSL's ticket callback (RFC 5077's format: key name, IV, AES-256-CBC,
 * HMAC-SHA256) over the shared keys: 1 to encrypt or decrypt with the
 * current key, 2 to decrypt with the previous one (OpenSSL then issues a
 * new ticket), 0 for a key no longer known (a full handshake).
 *
 * A TLS 1.3 resumption always answers 2: a TLS 1.3 client uses a ticket
 * once (RFC 8446 C.4; OpenSSL's clients and browsers do), so it needs a
 * new one from each resumed handshake, or its next connection makes a full
 * handshake. OpenSSL does the same with its own keys; with a callback it
 * sends a ticket after a resumption only on 2. Without it a client that
 * connects again and again (wrk with Connection: close) resumed one
 * connection in two, and paid a full handshake (a signature, the
 * certificate) for the other. */
static int ticket_key(SSL *ssl, unsigned char key_name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
                      EVP_CIPHER_CTX *cipher, EVP_MAC_CTX *mac, int encrypt) {
    const fc_tls_ticket_keys_t *shared = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    uint32_t current = shared->current % 3;
    const unsigned char *key = NULL;
    OSSL_PARAM params[3];
    int rc = 1;
    if (encrypt) {
        key = shared->keys[current];
        memcpy(key_name, key, 16);
        if (RAND_bytes(iv, 16) != 1)
            return -1;
    } else if (memcmp(key_name, shared->keys[current], 16) == 0) {
        key = shared->keys[current];
        if (SSL_version(ssl) == TLS1_3_VERSION)
            rc = 2;
    } else if (memcmp(key_name, shared->keys[(current + 2) % 3], 16) == 0) {
        key = shared->keys[(current + 2) % 3];
        rc = 2;
    } else {
        return 0;
    }
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)(key + 16), 32);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    if (EVP_CipherInit_ex(cipher, EVP_aes_256_cbc(), NULL, key + 48, iv, encrypt) != 1 ||
        EVP_MAC_CTX_set_params(mac, params) != 1)
        return -1;
    return rc;
}

/* OpenSSL's status callback: a client that asked for the certificate's
 * status (status_request) gets a copy of the shared response (OpenSSL frees
 * it with the connection), unless there is none or it has expired. */
static int staple_response(SSL *ssl, void *arg) {
    const fc_tls_staple_t *staple = arg;
    int tries;
    for (tries = 0; tries < 4; tries++) {
        uint32_t seq = __atomic_load_n(&staple->seq, __ATOMIC_ACQUIRE);
        uint32_t len = staple->len;
        int64_t expires = staple->expires;
        unsigned char *copy;
        if (seq & 1)
            continue;  /* being written (a few microseconds, once an hour) */
        if (len == 0 || len > FC_TLS_STAPLE_MAX || (expires != 0 && expires <= (int64_t)time(NULL)))
            return SSL_TLSEXT_ERR_NOACK;
        copy = OPENSSL_malloc(len);
        if (copy == NULL)
            return SSL_TLSEXT_ERR_NOACK;
        memcpy(copy, staple->der, len);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&staple->seq, __ATOMIC_RELAXED) != seq) {
            OPENSSL_free(copy);  /* rewritten while copied: again */
            continue;
        }
        if (SSL_set_tlsext_status_ocsp_resp(ssl, copy, (long)len) != 1) {
            OPENSSL_free(copy);
            return SSL_TLSEXT_ERR_NOACK;
        }
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

static int name_matches(const char *pattern, const char *name) {
    if (pattern[0] == '*' && pattern[1] == '.') {
        const char *dot = strchr(name, '.');
        return dot != NULL && dot != name && strcasecmp(dot + 1, pattern + 2) == 0;
    }
    return strcasecmp(pattern, name) == 0;
}

static int select_certificate(SSL *ssl, int *alert, void *arg) {
    fc_tls_server_t *server = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    size_t i;
    (void)alert;
    if (name == NULL)
        return SSL_TLSEXT_ERR_OK;  /* no SNI: the default certificate */
    /* exact names first, then wildcards, whatever the order of the tables */
    for (i = 0; i < server->count; i++) {
        if (server->names[i].name[0] != '*' && name_matches(server->names[i].name, name)) {
            SSL_set_SSL_CTX(ssl, server->names[i].ctx);
            return SSL_TLSEXT_ERR_OK;
        }
    }
    for (i = 0; i < server->count; i++) {
        if (server->names[i].name[0] == '*' && name_matches(server->names[i].name, name)) {
            SSL_set_SSL_CTX(ssl, server->names[i].ctx);
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_OK;  /* an unknown name: the default certificate */
}

static int readable_file(const char *setting, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot read %s: %s", setting, path, strerror(errno));
        return 0;
    }
    fclose(f);
    return 1;
}

static SSL_CTX *make_context(const char *certfile, const char *keyfile, const fc_tls_options_t *options,
                             const fc_tls_staple_t *staple, char *err, size_t errlen) {
    SSL_CTX *ctx;
    char what[600];
    if (!readable_file("certfile", certfile, err, errlen) || !readable_file("keyfile", keyfile, err, errlen))
        return NULL;
    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        openssl_reason(err, errlen, "cannot make a TLS context");
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION |
                             SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                          SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1);
#ifdef SSL_OP_ENABLE_KTLS
    if (options->ktls)
        SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS);  /* tried after each handshake; user space if refused */
#endif
    if (!SSL_CTX_set_min_proto_version(ctx, options->min_version)) {
        snprintf(err, errlen, "ssl_min_version: OpenSSL does not offer this version");
        goto fail;
    }
    if (options->ciphers != NULL && options->ciphers[0] && !SSL_CTX_set_cipher_list(ctx, options->ciphers)) {
        snprintf(what, sizeof(what), "ciphers: no cipher OpenSSL knows in %s", options->ciphers);
        openssl_reason(err, errlen, what);
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, certfile) != 1) {
        snprintf(what, sizeof(what), "certfile: %s is not a PEM certificate", certfile);
        openssl_reason(err, errlen, what);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, keyfile, SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
            snprintf(err, errlen, "keyfile: %s does not match the certificate in %s", keyfile, certfile);
            ERR_clear_error();
            goto fail;
        }
        snprintf(what, sizeof(what), "keyfile: %s is not a PEM private key for %s", keyfile, certfile);
        openssl_reason(err, errlen, what);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "keyfile: %s does not match the certificate in %s", keyfile, certfile);
        ERR_clear_error();
        goto fail;
    }
    /* sessions resume from tickets only: stateless, on any worker, and no
     * cache of sessions growing with the handshakes (up to 20,000 of a few
     * KiB each in OpenSSL's default). The id context is still required once
     * clients may show certificates. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"fastcore", 8);
    if (options->ticket_keys != NULL) {
        SSL_CTX_set_app_data(ctx, (void *)options->ticket_keys);
        if (SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key) != 1) {
            openssl_reason(err, errlen, "cannot set the session ticket keys");
            goto fail;
        }
    }
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
    if (staple != NULL) {
        SSL_CTX_set_tlsext_status_cb(ctx, staple_response);
        SSL_CTX_set_tlsext_status_arg(ctx, (void *)staple);
    }
    if (options->cert_reqs != FC_TLS_VERIFY_NONE) {
        STACK_OF(X509_NAME) *names;
        if (options->ca_certs == NULL) {
            snprintf(err, errlen, "cert_reqs: client certificates need ca_certs (the CAs that sign them)");
            goto fail;
        }
        if (!readable_file("ca_certs", options->ca_certs, err, errlen))
            goto fail;
        if (SSL_CTX_load_verify_locations(ctx, options->ca_certs, NULL) != 1) {
            snprintf(what, sizeof(what), "ca_certs: %s holds no PEM certificate", options->ca_certs);
            openssl_reason(err, errlen, what);
            goto fail;
        }
        names = SSL_load_client_CA_file(options->ca_certs);
        if (names != NULL)
            SSL_CTX_set_client_CA_list(ctx, names);
        ERR_clear_error();
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (options->cert_reqs == FC_TLS_VERIFY_REQUIRED ?
                                                   SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

fc_tls_server_t *fc_tls_server_new(const char *certfile, const char *keyfile, const fc_tls_options_t *options,
                                   char *err, size_t errlen) {
    fc_tls_server_t *server = calloc(1, sizeof(*server));
    if (server == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    server->options = *options;
    server->ctx = make_context(certfile, keyfile, options, options->staple, err, errlen);
    if (server->ctx == NULL) {
        free(server);
        return NULL;
    }
    SSL_CTX_set_tlsext_servername_callback(server->ctx, select_certificate);
    SSL_CTX_set_tlsext_servername_arg(server->ctx, server);
    return server;
}

int fc_tls_server_add_name(fc_tls_server_t *server, const char *server_name, const char *certfile,
                           const char *keyfile, const fc_tls_staple_t *staple, char *err, size_t errlen) {
    struct fc_tls_name *grown;
    SSL_CTX *ctx = make_context(certfile, keyfile, &server->options, staple, err, errlen);
    if (ctx == NULL)
        return -1;
    grown = realloc(server->names, (server->count + 1) * sizeof(*grown));
    if (grown == NULL) {
        SSL_CTX_free(ctx);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    server->names = grown;
    server->names[server->count].name = strdup(server_name);
    if (server->names[server->count].name == NULL) {
        SSL_CTX_free(ctx);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    server->names[server->count].ctx = ctx;
    server->count++;
    return 0;
}

void fc_tls_server_free(fc_tls_server_t *server) {
    size_t i;
    if (server == NULL)
        return;
    for (i = 0; i < server->count; i++) {
        free(server->names[i].name);
        SSL_CTX_free(server->names[i].ctx);
    }
    free(server->names);
    SSL_CTX_free(server->ctx);
    free(server);
}

fc_tls_conn_t *fc_tls_conn_new(fc_tls_server_t *server, int fd) {
    fc_tls_conn_t *conn = calloc(1, sizeof(*conn));
    SSL *ssl;
    if (conn == NULL)
        return NULL;
    ssl = SSL_new(server->ctx);
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        free(conn);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_accept_state(ssl);
    conn->ssl = ssl;
    return conn;
}

void fc_tls_conn_free(fc_tls_conn_t *conn) {
    if (conn == NULL)
        return;
    SSL_free(conn->ssl);
    free(conn);
}

int fc_tls_handshake(fc_tls_conn_t *conn) {
    SSL *ssl = conn->ssl;
    int rc;
    if (!conn->started) {
        /* A TLS client's first byte is 22 (a handshake record). A request
         * line's is a capital letter: an http:// URL pointed at this port,
         * which deserves a readable 400 rather than a reset (nginx's 497). */
        unsigned char first;
        ssize_t n = recv(SSL_get_fd(ssl), &first, 1, MSG_PEEK);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return FC_TLS_WANT_READ;
        if (n <= 0) {
            conn->failure = "the client closed before its first byte";
            return FC_TLS_FAILED;
        }
        conn->started = 1;
        if (first != 22) {
            conn->failure = "not a TLS record";
            return first >= 'A' && first <= 'Z' ? FC_TLS_PLAINTEXT : FC_TLS_FAILED;
        }
    }
    ERR_clear_error();
    rc = SSL_do_handshake(ssl);
    if (rc == 1)
        return FC_TLS_DONE;
    switch (SSL_get_error(ssl, rc)) {
    case SSL_ERROR_WANT_READ:
        return FC_TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return FC_TLS_WANT_WRITE;
    default:
        conn->failure = ERR_peek_last_error() ? ERR_reason_error_string(ERR_peek_last_error()) : NULL;
        if (conn->failure == NULL)
            conn->failure = SSL_is_server(ssl) ? "the client closed during the handshake"
                                               : "the server closed during the handshake";
        ERR_clear_error();
        return FC_TLS_FAILED;
    }
}

/* errno for a failed read or write: EAGAIN when OpenSSL waits for the socket */
static ssize_t failed(SSL *ssl, int rc, int broken_errno) {
    int code = SSL_get_error(ssl, rc);
    ERR_clear_error();
    if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }
    if (code == SSL_ERROR_ZERO_RETURN)
        return 0;
    if (code != SSL_ERROR_SYSCALL || errno == 0 || errno == EAGAIN)
        errno = broken_errno;
    return -1;
}

ssize_t fc_tls_read(fc_tls_conn_t *conn, void *buf, size_t n) {
    size_t got;
    int rc;
    ERR_clear_error();
    errno = 0;
    rc = SSL_read_ex(conn->ssl, buf, n, &got);
    if (rc == 1) {
        conn->drained = 0;
        return (ssize_t)got;
    }
    if (SSL_get_error(conn->ssl, rc) == SSL_ERROR_WANT_READ)
        conn->drained = 1;  /* what OpenSSL holds, if anything, is part of a record: wait for the socket */
    return failed(conn->ssl, rc, ECONNRESET);
}

int fc_tls_pending(const fc_tls_conn_t *conn) {
    SSL *ssl = conn->ssl;
    if (SSL_pending(ssl) > 0)
        return 1;
    /* read ahead: whole records may wait in OpenSSL's buffer, unprocessed */
    return SSL_get_read_ahead(ssl) && !conn->drained && SSL_has_pending(ssl);
}

static ssize_t write_record(fc_tls_conn_t *conn, const void *at, size_t len) {
    size_t written;
    int rc, code;
    ERR_clear_error();
    errno = 0;
    rc = SSL_write_ex(conn->ssl, at, len, &written);
    if (rc == 1) {
        conn->retry_len = 0;
        return (ssize_t)written;
    }
    code = SSL_get_error(conn->ssl, rc);
    ERR_clear_error();
    if (code == SSL_ERROR_WANT_WRITE || code == SSL_ERROR_WANT_READ) {
        conn->retry_len = len;
        errno = EAGAIN;
        return -1;
    }
    if (code != SSL_ERROR_SYSCALL || errno == 0 || errno == EAGAIN)
        errno = EPIPE;
    return -1;
}

ssize_t fc_tls_writev(fc_tls_conn_t *conn, const struct iovec *iov, int count) {
    size_t len = 0;
    int i;
    if (count <= 0)
        return 0;
    if (iov[0].iov_len >= FC_TLS_RECORD || count == 1) {
        /* a record's worth in the first piece: from there, no copy */
        len = iov[0].iov_len < FC_TLS_RECORD ? iov[0].iov_len : FC_TLS_RECORD;
        return write_record(conn, iov[0].iov_base, len);
    }
    for (i = 0; i < count && len < FC_TLS_RECORD; i++) {
        size_t take = iov[i].iov_len;
        if (take > FC_TLS_RECORD - len)
            take = FC_TLS_RECORD - len;
        memcpy(scratch + len, iov[i].iov_base, take);
        len += take;
    }
    return write_record(conn, scratch, len);
}

int fc_tls_ktls_send(const fc_tls_conn_t *conn) {
#ifndef OPENSSL_NO_KTLS
    return BIO_get_ktls_send(SSL_get_wbio(conn->ssl));
#else
    (void)conn;
    return 0;
#endif
}

ssize_t fc_tls_sendfile(fc_tls_conn_t *conn, int file_fd, int64_t *offset, size_t count) {
    size_t len = count < FC_TLS_RECORD ? count : FC_TLS_RECORD;
    ssize_t got, sent;
    if (count == 0)
        return 0;
#ifndef OPENSSL_NO_KTLS
    if (conn->retry_len == 0 && fc_tls_ktls_send(conn)) {
        /* the kernel encrypts: the page cache goes to the socket as it does without TLS */
        int code;
        ERR_clear_error();
        errno = 0;
        sent = SSL_sendfile(conn->ssl, file_fd, (off_t)*offset, count, 0);
        if (sent > 0) {
            *offset += sent;
            return sent;
        }
        code = SSL_get_error(conn->ssl, (int)sent);
        ERR_clear_error();
        if (code == SSL_ERROR_WANT_WRITE || code == SSL_ERROR_WANT_READ || errno == EAGAIN) {
            errno = EAGAIN;
            return -1;
        }
        if (errno == 0)
            errno = EPIPE;
        return -1;
    }
#endif
    got = pread(file_fd, scratch, len, *offset);
    if (got <= 0)
        return got;
    sent = write_record(conn, scratch, (size_t)got);
    if (sent > 0)
        *offset += sent;
    return sent;
}

void fc_tls_shutdown(fc_tls_conn_t *conn) {
    if (SSL_is_init_finished((SSL *)conn->ssl)) {
        ERR_clear_error();
        SSL_shutdown(conn->ssl);
        ERR_clear_error();
    }
}

const char *fc_tls_protocol(const fc_tls_conn_t *conn) {
    return SSL_get_version(conn->ssl);
}

const char *fc_tls_cipher(const fc_tls_conn_t *conn) {
    return SSL_get_cipher_name((SSL *)conn->ssl);
}

const char *fc_tls_server_name(const fc_tls_conn_t *conn) {
    return SSL_get_servername(conn->ssl, TLSEXT_NAMETYPE_host_name);
}

int fc_tls_resumed(const fc_tls_conn_t *conn) {
    return SSL_session_reused((SSL *)conn->ssl);
}

static void name_text(X509_NAME *name, char *out, size_t len) {
    BIO *bio = BIO_new(BIO_s_mem());
    int n;
    out[0] = 0;
    if (bio == NULL)
        return;
    if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0) {
        n = BIO_read(bio, out, (int)len - 1);
        out[n > 0 ? n : 0] = 0;
    }
    BIO_free(bio);
}

int fc_tls_peer_names(const fc_tls_conn_t *conn, char *subject, size_t subject_len, char *issuer,
                      size_t issuer_len) {
    X509 *cert = SSL_get0_peer_certificate(conn->ssl);
    subject[0] = issuer[0] = 0;
    if (cert == NULL || SSL_get_verify_result(conn->ssl) != X509_V_OK)
        return 0;
    name_text(X509_get_subject_name(cert), subject, subject_len);
    name_text(X509_get_issuer_name(cert), issuer, issuer_len);
    return 1;
}

int fc_tls_version_number(const fc_tls_conn_t *conn) {
    return SSL_version(conn->ssl);
}

int fc_tls_cipher_number(const fc_tls_conn_t *conn) {
    const SSL_CIPHER *cipher = SSL_get_current_cipher(conn->ssl);
    return cipher != NULL ? (int)SSL_CIPHER_get_protocol_id(cipher) : 0;
}

size_t fc_tls_certificate_pem(const fc_tls_conn_t *conn, int peer, char *out, size_t len) {
    X509 *cert = peer ? SSL_get0_peer_certificate(conn->ssl) : SSL_get_certificate(conn->ssl);
    BIO *bio;
    int n;
    out[0] = 0;
    if (cert == NULL || (peer && SSL_get_verify_result(conn->ssl) != X509_V_OK))
        return 0;
    bio = BIO_new(BIO_s_mem());
    if (bio == NULL)
        return 0;
    n = 0;
    if (PEM_write_bio_X509(bio, cert) == 1 && BIO_pending(bio) < (int)len) {
        n = BIO_read(bio, out, (int)len - 1);
        out[n > 0 ? n : 0] = 0;
    }
    BIO_free(bio);
    ERR_clear_error();
    return n > 0 ? (size_t)n : 0;
}


/* -- the client side ------------------------------------------------------------ */

struct fc_tls_client {
    SSL_CTX *ctx;
};

/* OpenSSL's new-session callback: the session goes into the server's slot
 * (the connection's app data), replacing the one there. Returning 1 keeps
 * OpenSSL's reference for the slot. */
static int keep_session(SSL *ssl, SSL_SESSION *session) {
    void **slot = SSL_get_app_data(ssl);
    if (slot == NULL)
        return 0;
    if (*slot != NULL)
        SSL_SESSION_free(*slot);
    *slot = session;
    return 1;
}

fc_tls_client_t *fc_tls_client_new(const fc_tls_client_options_t *options, char *err, size_t errlen) {
    static const unsigned char alpn[] = "\x08http/1.1";
    fc_tls_client_t *client = calloc(1, sizeof(*client));
    SSL_CTX *ctx;
    char what[600];
    if (client == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        free(client);
        openssl_reason(err, errlen, "cannot make a TLS context");
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                          SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* sessions live in the caller's per-server slots, not in a cache here */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, keep_session);
    if (SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1) != 0) {
        openssl_reason(err, errlen, "cannot offer ALPN");
        goto fail;
    }
    if (options->ca_certs != NULL && options->ca_certs[0]) {
        if (!readable_file("proxy_tls_ca_certs", options->ca_certs, err, errlen))
            goto fail;
        if (SSL_CTX_load_verify_locations(ctx, options->ca_certs, NULL) != 1) {
            snprintf(what, sizeof(what), "proxy_tls_ca_certs: %s holds no PEM certificate", options->ca_certs);
            openssl_reason(err, errlen, what);
            goto fail;
        }
    } else if (options->verify && SSL_CTX_set_default_verify_paths(ctx) != 1) {
        openssl_reason(err, errlen, "proxy_tls_ca_certs: cannot load the system's CA store");
        goto fail;
    }
    if (options->certfile != NULL && options->certfile[0]) {
        const char *keyfile = options->keyfile != NULL && options->keyfile[0] ? options->keyfile : options->certfile;
        if (!readable_file("proxy_tls_certfile", options->certfile, err, errlen) ||
            !readable_file("proxy_tls_keyfile", keyfile, err, errlen))
            goto fail;
        if (SSL_CTX_use_certificate_chain_file(ctx, options->certfile) != 1) {
            snprintf(what, sizeof(what), "proxy_tls_certfile: %s is not a PEM certificate", options->certfile);
            openssl_reason(err, errlen, what);
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, keyfile, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1) {
            snprintf(what, sizeof(what), "proxy_tls_keyfile: %s is not the PEM private key of %s", keyfile,
                     options->certfile);
            openssl_reason(err, errlen, what);
            goto fail;
        }
    }
    SSL_CTX_set_verify(ctx, options->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    ERR_clear_error();
    client->ctx = ctx;
    return client;
fail:
    SSL_CTX_free(ctx);
    free(client);
    return NULL;
}

void fc_tls_client_free(fc_tls_client_t *client) {
    if (client == NULL)
        return;
    SSL_CTX_free(client->ctx);
    free(client);
}

static int is_ip_address(const char *name) {
    unsigned char address[16];
    return inet_pton(AF_INET, name, address) == 1 || inet_pton(AF_INET6, name, address) == 1;
}

fc_tls_conn_t *fc_tls_client_conn_new(fc_tls_client_t *client, int fd, const char *server_name, void **session) {
    fc_tls_conn_t *conn = calloc(1, sizeof(*conn));
    SSL *ssl;
    int named = server_name != NULL && server_name[0];
    int ip = named && is_ip_address(server_name);
    if (conn == NULL)
        return NULL;
    ssl = SSL_new(client->ctx);
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1)
        goto fail;
    if (named && !ip && SSL_set_tlsext_host_name(ssl, server_name) != 1)
        goto fail;
    if (named && SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) {
        /* the name check is part of the chain's verification: a mismatch
         * fails the handshake ("hostname mismatch") */
        if (ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), server_name) != 1
               : SSL_set1_host(ssl, server_name) != 1)
            goto fail;
    }
    SSL_set_app_data(ssl, session);
    if (session != NULL && *session != NULL) {
        /* OpenSSL spends a TLS 1.3 ticket once it resumed with it (RFC 8446
         * C.4); the server may send none new then: the next connection
         * makes a full handshake, which brings new ones */
        if (!SSL_SESSION_is_resumable(*session)) {
            SSL_SESSION_free(*session);
            *session = NULL;
        } else {
            SSL_set_session(ssl, *session);  /* a stale one only costs a full handshake */
        }
    }
    SSL_set_connect_state(ssl);
    conn->ssl = ssl;
    conn->started = 1;  /* the plaintext check is the server side's */
    ERR_clear_error();
    return conn;
fail:
    SSL_free(ssl);
    free(conn);
    ERR_clear_error();
    return NULL;
}

void fc_tls_session_free(void *session) {
    if (session != NULL)
        SSL_SESSION_free(session);
}

size_t fc_tls_failure_reason(const fc_tls_conn_t *conn, char *out, size_t len) {
    SSL *ssl = conn->ssl;
    long result = SSL_get_verify_result(ssl);
    int n;
    if ((SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) && result != X509_V_OK)
        n = snprintf(out, len, "certificate verify failed: %s", X509_verify_cert_error_string(result));
    else
        n = snprintf(out, len, "%s", conn->failure != NULL ? conn->failure : "the handshake failed");
    if (n < 0)
        n = 0;
    return (size_t)n < len ? (size_t)n : len - 1;
}
