# Interface of fastcore._core.tls: the TLS settings of a listener, made into
# OpenSSL contexts once per worker. A TLSContext owns its fc_tls_server_t
# and frees it when it is freed; the listeners that use it hold a reference
# for as long as they accept, and OpenSSL counts the connections' own
# references to the contexts inside.
from fastcore._core.includes.fc_tls cimport fc_tls_conn_t, fc_tls_server_t


cdef class TLSContext:
    cdef fc_tls_server_t *server
    cdef readonly tuple server_names    # the SNI names of the [[tls]] tables, for messages
    cdef object ticket_keys             # the shared mmap of the ticket keys, kept mapped while used
    cdef object staples                 # the shared mmap of the OCSP responses, likewise

    cdef fc_tls_conn_t *new_connection(self, int fd) noexcept   # NULL: out of memory


cdef dict session_environ(fc_tls_conn_t *tls)   # the SSL_* environ keys of an established session
cdef dict session_scope(fc_tls_conn_t *tls)     # the ASGI "tls" extension of an established session
