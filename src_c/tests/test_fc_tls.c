/* Tests of fc_tls under ASan/UBSan: a server session over one end of a
 * non-blocking socket pair, OpenSSL's client on the other, both driven in
 * this one thread as the loop would drive them. The certificates are made
 * here (ECDSA P-256, self-signed) into a temporary directory. */
#define _GNU_SOURCE
#include "fc_test.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "fc_tls.h"

static char dir[] = "/tmp/fc_tls_test_XXXXXX";

static void write_certificate(const char *name, const char *cn)
{
    char path[256];
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *cert = X509_new();
    FILE *f;
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(cert, X509_get_subject_name(cert));
    X509_sign(cert, key, EVP_sha256());
    snprintf(path, sizeof(path), "%s/%s.pem", dir, name);
    f = fopen(path, "w");
    PEM_write_X509(f, cert);
    fclose(f);
    snprintf(path, sizeof(path), "%s/%s.key", dir, name);
    f = fopen(path, "w");
    PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    chmod(path, 0600);
    X509_free(cert);
    EVP_PKEY_free(key);
}

static const char *file(const char *name) { return path_in(dir, name); }

static fc_tls_options_t defaults(void)
{
    fc_tls_options_t options = {NULL, FC_TLS_VERIFY_NONE, TLS1_2_VERSION, NULL, NULL, NULL, 0};
    return options;
}

static void test_server_errors(void)
{
    char err[512];
    fc_tls_options_t options = defaults();
    fc_tls_server_t *server = fc_tls_server_new(file("a.pem"), file("a.key"), &options, err, sizeof(err));
    CHECK(server != NULL, "a matching pair: %s", err);
    fc_tls_server_free(server);
    CHECK(fc_tls_server_new(file("a.pem"), file("b.key"), &options, err, sizeof(err)) == NULL, "mismatch taken");
    CHECK(strstr(err, "does not match the certificate") != NULL, "mismatch: %s", err);
    CHECK(fc_tls_server_new(file("missing.pem"), file("a.key"), &options, err, sizeof(err)) == NULL, "missing");
    CHECK(strstr(err, "certfile: cannot read") != NULL, "missing: %s", err);
    options.ciphers = "NOT-A-CIPHER";
    CHECK(fc_tls_server_new(file("a.pem"), file("a.key"), &options, err, sizeof(err)) == NULL, "bad ciphers");
    CHECK(strncmp(err, "ciphers:", 8) == 0, "bad ciphers: %s", err);
}

typedef struct {
    int fds[2];                 /* [0] the server's end, [1] the client's */
    fc_tls_conn_t *server;
    SSL_CTX *client_ctx;
    SSL *client;
} pair_t;

static void pair_open(pair_t *p, fc_tls_server_t *server)
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p->fds) != 0) {
        perror("socketpair");
        exit(2);
    }
    p->server = fc_tls_conn_new(server, p->fds[0]);
    p->client_ctx = SSL_CTX_new(TLS_client_method());
    p->client = SSL_new(p->client_ctx);
    SSL_set_fd(p->client, p->fds[1]);
    SSL_set_tlsext_host_name(p->client, "b.test");
    SSL_set_connect_state(p->client);
}

static void pair_close(pair_t *p)
{
    /* a client that ends without close_notify has its session marked not
     * resumable (by OpenSSL, on its side) */
    if (SSL_is_init_finished(p->client))
        SSL_shutdown(p->client);
    ERR_clear_error();
    fc_tls_conn_free(p->server);
    SSL_free(p->client);
    SSL_CTX_free(p->client_ctx);
    close(p->fds[0]);
    close(p->fds[1]);
}

static int handshake(pair_t *p)
{
    int server_rc = FC_TLS_WANT_READ, client_rc = 0, i;
    for (i = 0; i < 100 && (server_rc != FC_TLS_DONE || client_rc != 1); i++) {
        if (client_rc != 1)
            client_rc = SSL_do_handshake(p->client);
        if (server_rc != FC_TLS_DONE)
            server_rc = fc_tls_handshake(p->server);
        if (server_rc == FC_TLS_FAILED || server_rc == FC_TLS_PLAINTEXT)
            return server_rc;
    }
    return server_rc == FC_TLS_DONE && client_rc == 1 ? FC_TLS_DONE : FC_TLS_FAILED;
}

static size_t client_read_all(pair_t *p, char *out, size_t most)
{
    size_t got = 0, n;
    while (got < most && SSL_read_ex(p->client, out + got, most - got, &n) == 1)
        got += n;
    ERR_clear_error();
    return got;
}

static void test_session(fc_tls_server_t *server)
{
    pair_t p;
    char buf[65536];
    struct iovec iov[3];
    ssize_t n;
    size_t got, total = 0;
    int records;
    guarded_t body;
    pair_open(&p, server);
    CHECK(fc_tls_handshake(p.server) == FC_TLS_WANT_READ, "nothing sent yet: want read");
    CHECK(handshake(&p) == FC_TLS_DONE, "handshake");
    CHECK(strcmp(fc_tls_server_name(p.server), "b.test") == 0, "SNI seen");
    /* SNI chose b's certificate */
    {
        X509 *cert = SSL_get0_peer_certificate(p.client);
        char cn[64] = "";
        X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
        CHECK(strcmp(cn, "b.test") == 0, "certificate by SNI: %s", cn);
    }

    /* three pieces, one record: the client reads them in one SSL_read */
    iov[0].iov_base = "HTTP/1.1 200 OK\r\n";
    iov[0].iov_len = 17;
    iov[1].iov_base = "Content-Length: 4\r\n\r\n";
    iov[1].iov_len = 21;
    body = guarded_copy("body", 4);  /* the last piece ends at a guard page */
    iov[2].iov_base = body.data;
    iov[2].iov_len = 4;
    CHECK(fc_tls_writev(p.server, iov, 3) == 42, "coalesced write");
    guarded_free(body);
    CHECK(SSL_read_ex(p.client, buf, sizeof(buf), &got) == 1 && got == 42, "one record: %zu", got);
    CHECK(memcmp(buf, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody", 42) == 0, "bytes");

    /* one client record read a few bytes at a time: the rest is pending in
     * OpenSSL, not in the socket */
    memset(buf, 'r', 300);
    CHECK(SSL_write_ex(p.client, buf, 300, &got) == 1, "client write");
    {
        /* into a buffer that ends at a guard page: never a byte past n */
        guarded_t ten = guarded_alloc(10);
        CHECK(fc_tls_read(p.server, ten.data, 10) == 10, "first 10");
        guarded_free(ten);
    }
    CHECK(fc_tls_pending(p.server), "the rest is pending");
    for (got = 10; fc_tls_pending(p.server);) {
        n = fc_tls_read(p.server, buf, 64);
        CHECK(n > 0, "pending read");
        got += (size_t)n;
    }
    CHECK(got == 300, "all of the record: %zu", got);
    errno = 0;
    CHECK(fc_tls_read(p.server, buf, 64) == -1 && errno == EAGAIN, "then EAGAIN");

    /* a large piece goes a record at a time, from where it is */
    {
        static char large[40000];
        memset(large, 'x', sizeof(large));
        iov[0].iov_base = large;
        iov[0].iov_len = sizeof(large);
        CHECK(fc_tls_writev(p.server, iov, 1) == FC_TLS_RECORD, "one record of a large piece");
        got = client_read_all(&p, buf, sizeof(buf));
        CHECK(got == FC_TLS_RECORD, "read %zu", got);
    }

    /* a file, read and encrypted a record at a time */
    {
        int fd = open(file("a.pem"), O_RDONLY);
        int64_t offset = 5;
        struct stat st;
        fstat(fd, &st);
        n = fc_tls_sendfile(p.server, fd, &offset, (size_t)st.st_size - 5);
        CHECK(n == st.st_size - 5 && offset == st.st_size, "file sent: %zd", n);
        got = client_read_all(&p, buf, sizeof(buf));
        CHECK(got == (size_t)n, "file read: %zu", got);
        close(fd);
    }

    /* the socket full: EAGAIN, and the retry with the same bytes goes */
    {
        static char chunk[8192];
        memset(chunk, 'y', sizeof(chunk));
        iov[0].iov_base = chunk;
        iov[0].iov_len = sizeof(chunk);
        for (records = 0; records < 10000; records++) {
            n = fc_tls_writev(p.server, iov, 1);
            if (n < 0)
                break;
            total += (size_t)n;
        }
        CHECK(n == -1 && errno == EAGAIN && p.server->retry_len == sizeof(chunk), "full: %zd %d", n, errno);
        while (total > 0) {
            got = client_read_all(&p, buf, sizeof(buf));
            if (got == 0)
                break;
            total -= got;
        }
        CHECK(fc_tls_writev(p.server, iov, 1) == (ssize_t)sizeof(chunk), "retried");
        CHECK(p.server->retry_len == 0, "retry done");
        got = client_read_all(&p, buf, sizeof(buf));
        CHECK(got == sizeof(chunk), "retried bytes read: %zu", got);
    }

    /* close_notify, then the client sees the end */
    fc_tls_shutdown(p.server);
    CHECK(SSL_read_ex(p.client, buf, sizeof(buf), &got) == 0 &&
          SSL_get_error(p.client, 0) == SSL_ERROR_ZERO_RETURN, "close_notify");
    ERR_clear_error();
    pair_close(&p);
}

static void test_not_tls(fc_tls_server_t *server)
{
    pair_t p;
    pair_open(&p, server);
    CHECK(write(p.fds[1], "GET / HTTP/1.1\r\n", 16) == 16, "write");
    CHECK(fc_tls_handshake(p.server) == FC_TLS_PLAINTEXT, "a request line is plain HTTP");
    pair_close(&p);

    pair_open(&p, server);
    CHECK(write(p.fds[1], "\x00\x01\x02garbage", 10) == 10, "write");
    CHECK(fc_tls_handshake(p.server) == FC_TLS_FAILED, "garbage fails");
    pair_close(&p);

    pair_open(&p, server);
    CHECK(write(p.fds[1], "\x16\x03\x01\x00\x05hello", 10) == 10, "write");
    CHECK(fc_tls_handshake(p.server) == FC_TLS_FAILED, "a bad handshake record fails");
    pair_close(&p);

    pair_open(&p, server);
    close(p.fds[1]);
    p.fds[1] = open("/dev/null", O_RDONLY);
    CHECK(fc_tls_handshake(p.server) == FC_TLS_FAILED, "the peer gone");
    pair_close(&p);
}

/* a session resumes from a ticket under the current key and the one
 * before; two rotations later it does not */
static void test_tickets(void)
{
    static fc_tls_ticket_keys_t keys;
    char err[512];
    fc_tls_options_t options = defaults();
    fc_tls_server_t *server;
    SSL_SESSION *session;
    pair_t p;
    char buf[16];
    size_t got;
    int i, rotation;
    int reused[4];
    const unsigned char *ticket;
    memset(&keys, 0, sizeof(keys));
    RAND_bytes(keys.keys[0], FC_TLS_TICKET_KEY_LEN);
    options.ticket_keys = &keys;
    options.min_version = TLS1_2_VERSION;
    server = fc_tls_server_new(file("a.pem"), file("a.key"), &options, err, sizeof(err));
    CHECK(server != NULL, "server with shared keys: %s", err);
    if (server == NULL)
        return;
    pair_open(&p, server);
    SSL_set_max_proto_version(p.client, TLS1_2_VERSION);
    CHECK(handshake(&p) == FC_TLS_DONE, "first handshake");
    session = SSL_get1_session(p.client);
    ticket = NULL;
    SSL_SESSION_get0_ticket(session, &ticket, &got);
    CHECK(ticket != NULL && got > 0, "a ticket");
    pair_close(&p);
    for (rotation = 0; rotation < 3; rotation++) {
        pair_open(&p, server);
        SSL_set_max_proto_version(p.client, TLS1_2_VERSION);
        SSL_set_session(p.client, session);
        CHECK(handshake(&p) == FC_TLS_DONE, "handshake after %d rotations", rotation);
        reused[rotation] = SSL_session_reused(p.client);
        CHECK(fc_tls_resumed(p.server) == reused[rotation], "both ends agree");
        (void)SSL_read_ex(p.client, buf, sizeof(buf), &got);  /* takes a renewed ticket, if any */
        ERR_clear_error();
        pair_close(&p);
        /* the arbiter's rotation: a new key in the free slot, then current */
        i = (int)((keys.current + 1) % 3);
        RAND_bytes(keys.keys[i], FC_TLS_TICKET_KEY_LEN);
        keys.current = (uint32_t)i;
    }
    CHECK(reused[0] && reused[1] && !reused[2], "resumed %d %d %d", reused[0], reused[1], reused[2]);
    SSL_SESSION_free(session);
    fc_tls_server_free(server);
}

int main(void)
{
    char err[512];
    fc_tls_options_t options = defaults();
    fc_tls_server_t *server;
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    write_certificate("a", "a.test");
    write_certificate("b", "b.test");
    test_server_errors();
    server = fc_tls_server_new(file("a.pem"), file("a.key"), &options, err, sizeof(err));
    CHECK(server != NULL, "server: %s", err);
    CHECK(fc_tls_server_add_name(server, "b.test", file("b.pem"), file("b.key"), NULL, err, sizeof(err)) == 0,
          "add b: %s", err);
    test_session(server);
    test_not_tls(server);
    fc_tls_server_free(server);
    test_tickets();
    unlink(file("a.pem"));
    unlink(file("a.key"));
    unlink(file("b.pem"));
    unlink(file("b.key"));
    rmdir(dir);
    printf("fc_tls: %d checks, %d failures\n", checks, failures);
    return failures != 0;
}
