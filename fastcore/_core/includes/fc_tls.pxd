# Declarations of src_c/fc_tls.h: TLS over a non-blocking socket (OpenSSL).
# An fc_tls_server_t is owned by the TLSContext that made it; an
# fc_tls_conn_t by the Stream that holds it (freed in Stream.close). Reads
# and writes behave as read(2)/writev(2): -1 with errno EAGAIN means wait.
from libc.stdint cimport int32_t, int64_t, uint32_t
from fastcore._core.includes.syscalls cimport iovec


cdef extern from "fc_tls.h" nogil:
    enum:
        FC_TLS_DONE
        FC_TLS_FAILED
        FC_TLS_WANT_READ
        FC_TLS_WANT_WRITE
        FC_TLS_PLAINTEXT
        FC_TLS_VERIFY_NONE
        FC_TLS_VERIFY_OPTIONAL
        FC_TLS_VERIFY_REQUIRED
        FC_TLS_TICKET_KEY_LEN
        FC_TLS_RECORD
        FC_TLS_STAPLE_MAX

    ctypedef struct fc_tls_ticket_keys_t:
        pass

    ctypedef struct fc_tls_staple_t:
        uint32_t seq
        uint32_t len
        int64_t expires
        int64_t fetched
        int32_t status
        unsigned char der[1]        # FC_TLS_STAPLE_MAX bytes in C; len of them used

    ctypedef struct fc_tls_options_t:
        const char *ca_certs
        int cert_reqs
        int min_version
        const char *ciphers
        const fc_tls_ticket_keys_t *ticket_keys
        const fc_tls_staple_t *staple
        int ktls

    ctypedef struct fc_tls_server_t:
        pass

    ctypedef struct fc_tls_conn_t:
        size_t retry_len
        const char *failure

    fc_tls_server_t *fc_tls_server_new(const char *certfile, const char *keyfile, const fc_tls_options_t *options,
                                       char *err, size_t errlen)
    int fc_tls_server_add_name(fc_tls_server_t *server, const char *server_name, const char *certfile,
                               const char *keyfile, const fc_tls_staple_t *staple, char *err, size_t errlen)
    void fc_tls_server_free(fc_tls_server_t *server)
    fc_tls_conn_t *fc_tls_conn_new(fc_tls_server_t *server, int fd)
    void fc_tls_conn_free(fc_tls_conn_t *conn)
    int fc_tls_handshake(fc_tls_conn_t *conn)
    ssize_t fc_tls_read(fc_tls_conn_t *conn, void *buf, size_t n)
    int fc_tls_pending(const fc_tls_conn_t *conn)
    ssize_t fc_tls_writev(fc_tls_conn_t *conn, const iovec *iov, int count)
    ssize_t fc_tls_sendfile(fc_tls_conn_t *conn, int file_fd, int64_t *offset, size_t count)
    int fc_tls_ktls_send(const fc_tls_conn_t *conn)
    void fc_tls_shutdown(fc_tls_conn_t *conn)
    const char *fc_tls_protocol(const fc_tls_conn_t *conn)
    const char *fc_tls_cipher(const fc_tls_conn_t *conn)
    const char *fc_tls_server_name(const fc_tls_conn_t *conn)
    int fc_tls_peer_names(const fc_tls_conn_t *conn, char *subject, size_t subject_len, char *issuer,
                          size_t issuer_len)
    int fc_tls_resumed(const fc_tls_conn_t *conn)
    int fc_tls_version_number(const fc_tls_conn_t *conn)
    int fc_tls_cipher_number(const fc_tls_conn_t *conn)
    size_t fc_tls_certificate_pem(const fc_tls_conn_t *conn, int peer, char *out, size_t len)

    # the client side (proxy to https:// servers): an fc_tls_client_t is
    # owned by the upstream.TLSClient that made it; a session slot by the
    # upstream.TLSPeer of its server
    ctypedef struct fc_tls_client_options_t:
        int verify
        const char *ca_certs
        const char *certfile
        const char *keyfile

    ctypedef struct fc_tls_client_t:
        pass

    fc_tls_client_t *fc_tls_client_new(const fc_tls_client_options_t *options, char *err, size_t errlen)
    void fc_tls_client_free(fc_tls_client_t *client)
    fc_tls_conn_t *fc_tls_client_conn_new(fc_tls_client_t *client, int fd, const char *server_name, void **session)
    void fc_tls_session_free(void *session)
    size_t fc_tls_failure_reason(const fc_tls_conn_t *conn, char *out, size_t len)
