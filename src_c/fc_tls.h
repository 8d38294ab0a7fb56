/* fc_tls: TLS over a non-blocking socket, with OpenSSL, for the server side
 * of a connection (a TLS listener) and for the client side of one (the
 * proxy to an https:// upstream server). No Python here: the loop
 * (connection.pyx, upstream.pyx) drives it.
 *
 * Contract: every call returns at once. A call that needs the socket to be
 * readable or writable first says so (FC_TLS_WANT_READ, FC_TLS_WANT_WRITE,
 * or -1 with errno EAGAIN for reads and writes, like read(2)); the caller
 * waits for that event and calls again. OpenSSL may hold decrypted bytes
 * that the socket no longer has: after a read, fc_tls_pending() says
 * whether more is there without any epoll event to announce it.
 *
 * A server (fc_tls_server_t) is the contexts of one set of listeners: the
 * default certificate, and certificates chosen by SNI (exact names, or
 * "*.example.com" for one label). It is made once per worker and lives as
 * long as the worker (a reload starts new workers, which make their own):
 * its SNI callback points at it, so it must outlive every connection made
 * from it. Each connection holds OpenSSL's reference to its context.
 */
#ifndef FC_TLS_H
#define FC_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* results of fc_tls_handshake */
#define FC_TLS_DONE        1   /* established: read and write from now on */
#define FC_TLS_FAILED     -1   /* bad or foreign bytes, refused certificate, peer gone: close */
#define FC_TLS_WANT_READ  -2   /* call again when the socket is readable */
#define FC_TLS_WANT_WRITE -3   /* call again when the socket is writable */
#define FC_TLS_PLAINTEXT  -4   /* the client speaks plain HTTP (a request line came first): answer 400 in clear */

/* client certificates (cert_reqs) */
#define FC_TLS_VERIFY_NONE     0
#define FC_TLS_VERIFY_OPTIONAL 1   /* asked for; checked if given */
#define FC_TLS_VERIFY_REQUIRED 2   /* a client without a certificate signed by ca_certs fails the handshake */

/* a session ticket key: name (16), HMAC-SHA256 secret (32), AES-256 key (32) */
#define FC_TLS_TICKET_KEY_LEN 80

/* The ticket keys the workers of one arbiter share, in memory the arbiter
 * writes and the workers read (mmap'd before fork). `current` names the
 * slot whose key encrypts new tickets; the slot before it (current + 2,
 * mod 3) still decrypts, so a ticket lives through one rotation and is
 * renewed then. The arbiter rotates by writing a new key into the third
 * slot, the one no worker reads, and only then moving `current` to it with
 * one aligned 32-bit store: a reader never meets a key half written. */
typedef struct fc_tls_ticket_keys {
    volatile uint32_t current;  /* 0, 1 or 2 */
    uint32_t reserved;
    unsigned char keys[3][FC_TLS_TICKET_KEY_LEN];
} fc_tls_ticket_keys_t;

/* The OCSP response stapled to one certificate's handshakes (RFC 6066's
 * status_request), in memory the arbiter writes and the workers read
 * (mmap'd before fork; fc_ocsp.c writes it). A seqlock: the writer makes
 * `seq` odd, writes, and makes it even again; a reader copies and retries
 * when `seq` was odd or moved meanwhile. A response is stapled while `len`
 * is not 0 and `expires` (its nextUpdate, Unix seconds; 0 when it names
 * none) has not passed. */
#define FC_TLS_STAPLE_MAX 16384
typedef struct fc_tls_staple {
    volatile uint32_t seq;
    uint32_t len;               /* bytes of der; 0: nothing to staple */
    int64_t expires;            /* the response's nextUpdate (Unix seconds), 0: none given */
    int64_t fetched;            /* when it was stored (Unix seconds), 0: never */
    int32_t status;             /* the certificate's status in it: 0 good, 1 revoked, 2 unknown */
    int32_t reserved;
    unsigned char der[FC_TLS_STAPLE_MAX];
} fc_tls_staple_t;

/* a TLS record carries at most this much plaintext: writes are coalesced
 * up to it, so a response head and a small body go out in one record */
#define FC_TLS_RECORD 16384

typedef struct fc_tls_options {
    const char *ca_certs;       /* PEM file of the CAs that sign client certificates, or NULL */
    int cert_reqs;              /* FC_TLS_VERIFY_* */
    int min_version;            /* TLS1_2_VERSION (0x0303) or TLS1_3_VERSION (0x0304) */
    const char *ciphers;        /* OpenSSL cipher list for TLS 1.2, or NULL for OpenSSL's default */
    const fc_tls_ticket_keys_t *ticket_keys;   /* the shared keys, or NULL: OpenSSL's key of this process */
    const fc_tls_staple_t *staple;             /* the default certificate's OCSP response, or NULL: none */
    int ktls;                   /* 1: kernel TLS where the kernel offers it (files then go out with SSL_sendfile) */
} fc_tls_options_t;

typedef struct fc_tls_server fc_tls_server_t;

typedef struct fc_tls_conn {
    void *ssl;                  /* SSL *, owned */
    size_t retry_len;           /* a write that wanted the socket: the length it must be retried with */
    int started;                /* the first handshake step ran (the plaintext check is done) */
    int drained;                /* the last read wanted the socket: OpenSSL holds no whole record */
    const char *failure;        /* why the handshake failed (static text), for the log */
} fc_tls_conn_t;

/* The server of a default certificate and key (PEM; the certificate file may
 * hold the chain after it). Returns NULL with a one-line reason in err
 * (a missing file, a key that does not match its certificate, a bad
 * cipher list or CA file). */
fc_tls_server_t *fc_tls_server_new(const char *certfile, const char *keyfile, const fc_tls_options_t *options,
                                   char *err, size_t errlen);

/* Adds a certificate chosen when the client's SNI is server_name, with the
 * OCSP response to staple to it (NULL: none). Returns 0, or -1 with the
 * reason in err. */
int fc_tls_server_add_name(fc_tls_server_t *server, const char *server_name, const char *certfile,
                           const char *keyfile, const fc_tls_staple_t *staple, char *err, size_t errlen);

void fc_tls_server_free(fc_tls_server_t *server);

/* A connection on the accepted socket fd (non-blocking), not yet
 * handshaken. NULL when out of memory. */
fc_tls_conn_t *fc_tls_conn_new(fc_tls_server_t *server, int fd);

/* Frees the connection's TLS state (the caller closes fd). */
void fc_tls_conn_free(fc_tls_conn_t *conn);

/* One step of the handshake: FC_TLS_DONE, FC_TLS_WANT_READ/WRITE,
 * FC_TLS_PLAINTEXT (checked once, before any TLS byte is read: the socket's
 * first bytes are peeked) or FC_TLS_FAILED. */
int fc_tls_handshake(fc_tls_conn_t *conn);

/* Like read(2): bytes read (> 0), 0 at the end (close_notify, or the peer
 * closed), -1 with errno EAGAIN (wait for readable; rarely writable, see
 * fc_tls_wants_write) or ECONNRESET (a TLS error). */
ssize_t fc_tls_read(fc_tls_conn_t *conn, void *buf, size_t n);

/* Whether OpenSSL holds plaintext already read from the socket. */
int fc_tls_pending(const fc_tls_conn_t *conn);

/* Like writev(2) over at most FC_TLS_RECORD bytes of the iovecs, as one
 * record: bytes written (> 0), or -1 with errno EAGAIN or EPIPE/ECONNRESET.
 * After EAGAIN the next call must offer the same bytes (at least as many):
 * the caller's queue still holds them, unchanged, in front. */
ssize_t fc_tls_writev(fc_tls_conn_t *conn, const struct iovec *iov, int count);

/* Like sendfile(2) for TLS: reads up to FC_TLS_RECORD bytes of file_fd at
 * *offset and writes them as one record; advances *offset by what was sent.
 * Returns that count, 0 at the end of the file, -1 with errno as above (or
 * the read's errno). */
ssize_t fc_tls_sendfile(fc_tls_conn_t *conn, int file_fd, int64_t *offset, size_t count);

/* Whether the kernel encrypts what this connection sends (kernel TLS, set
 * up by OpenSSL after the handshake when the options asked for it and the
 * kernel and the suite allow): fc_tls_sendfile then sends any length with
 * sendfile, not a record at a time. */
int fc_tls_ktls_send(const fc_tls_conn_t *conn);

/* Sends close_notify if the socket takes it now (best effort, never waits). */
void fc_tls_shutdown(fc_tls_conn_t *conn);

/* What the handshake settled, for the application (valid once FC_TLS_DONE):
 * the protocol ("TLSv1.3"), the cipher, the SNI name (NULL if none), and
 * for a client certificate the subject and issuer as RFC 2253 text into buf
 * (returns 1 if verified, 0 if there is none or it was not verified, the
 * text then empty). */
const char *fc_tls_protocol(const fc_tls_conn_t *conn);
const char *fc_tls_cipher(const fc_tls_conn_t *conn);
const char *fc_tls_server_name(const fc_tls_conn_t *conn);
int fc_tls_peer_names(const fc_tls_conn_t *conn, char *subject, size_t subject_len, char *issuer,
                      size_t issuer_len);
/* whether the session was resumed (a ticket) */
int fc_tls_resumed(const fc_tls_conn_t *conn);
/* the protocol as its number (0x0304 for TLS 1.3) and the suite's IANA number */
int fc_tls_version_number(const fc_tls_conn_t *conn);
int fc_tls_cipher_number(const fc_tls_conn_t *conn);
/* PEM text of our certificate (peer = 0) or of the client's verified one
 * (peer = 1) into out (NUL-terminated): its length, 0 when there is none
 * or out is too small */
size_t fc_tls_certificate_pem(const fc_tls_conn_t *conn, int peer, char *out, size_t len);

/* "what: OpenSSL's words for its last error" into err, and the error queue
 * cleared (for fc_ocsp.c) */
void fc_tls_openssl_reason(char *err, size_t errlen, const char *what);

/* -- the client side: connections to https:// upstream servers ----------------
 *
 * A client (fc_tls_client_t) is the context of one proxy location: its
 * trust (verification on or off, the CAs), and the certificate it shows,
 * if any. Its connections offer ALPN http/1.1 only. Resumption: each server
 * of the location has a session slot (void *, NULL at first, owned by the
 * caller, freed with fc_tls_session_free); a connection offers the
 * session in it and puts there each new one the server sends (in TLS 1.3
 * after the handshake, while the response is read), so the slot must
 * outlive the connection. */

typedef struct fc_tls_client fc_tls_client_t;

typedef struct fc_tls_client_options {
    int verify;                 /* 1: the server's chain must reach a trusted CA, and its name match */
    const char *ca_certs;       /* PEM file of the trusted CAs, or NULL: the system's store */
    const char *certfile;       /* a certificate (chain) to show the server, or NULL */
    const char *keyfile;        /* its private key (with certfile) */
} fc_tls_client_options_t;

/* Returns NULL with a one-line reason in err (a missing or bad file). */
fc_tls_client_t *fc_tls_client_new(const fc_tls_client_options_t *options, char *err, size_t errlen);

void fc_tls_client_free(fc_tls_client_t *client);

/* A client connection on the connected socket fd (non-blocking), not yet
 * handshaken (fc_tls_handshake drives it, as on the server side, without
 * the plaintext check). server_name is sent as SNI and the certificate is
 * checked against it: a DNS name (SNI and the certificate's names), or an
 * IP address (no SNI, as RFC 6066 says; the certificate's IP addresses).
 * session: the server's slot (see above). NULL when out of memory. */
fc_tls_conn_t *fc_tls_client_conn_new(fc_tls_client_t *client, int fd, const char *server_name, void **session);

/* Frees a session of a slot (NULL is fine). */
void fc_tls_session_free(void *session);

/* Why the handshake of conn failed, as one line into out (NUL-terminated):
 * for a refused certificate "certificate verify failed: " and OpenSSL's
 * words ("self-signed certificate", "hostname mismatch"), else the
 * handshake's failure. Returns its length. */
size_t fc_tls_failure_reason(const fc_tls_conn_t *conn, char *out, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* FC_TLS_H */
