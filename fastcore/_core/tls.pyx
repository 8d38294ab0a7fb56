# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The TLS settings of a listener made into OpenSSL contexts (src_c/fc_tls.c),
and what an established session tells the application.

The contexts are made in each worker (after fork: OpenSSL's state is not
shared between processes); the arbiter makes them once before, to refuse a
bad certificate or key with one line (fastcore.preflight). A reload (HUP)
starts new workers, which read the files again: new connections get the
new certificate while the old workers finish their connections with the old.
The session ticket keys live in memory the arbiter shares with every
worker (new_ticket_keys, made before the first fork): a ticket one worker
issued resumes on any other, across reloads too. The arbiter rotates them
(rotate_ticket_keys) every ssl_ticket_rotate seconds; a ticket is taken for
one rotation more, and renewed then.
OCSP responses to staple live in shared memory too (new_staples, one slot
per certificate: the default one, then each [[tls]] table), written by the
arbiter (fastcore.stapling) and read by every worker's handshakes.
"""
import mmap
import os
import struct

from libc.stdint cimport int64_t
from libc.stdlib cimport free
from libc.string cimport strlen

from fastcore._core.includes.fc_ocsp cimport *
from fastcore._core.includes.fc_tls cimport *

cdef extern from "<openssl/ssl.h>":
    enum:
        TLS1_2_VERSION
        TLS1_3_VERSION

# the values of cert_reqs and ssl_min_version (config.py) as fc_tls takes them
CERT_REQS = {"none": FC_TLS_VERIFY_NONE, "optional": FC_TLS_VERIFY_OPTIONAL, "required": FC_TLS_VERIFY_REQUIRED}
MIN_VERSIONS = {"1.2": TLS1_2_VERSION, "1.3": TLS1_3_VERSION}
TICKET_KEYS_SIZE = sizeof(fc_tls_ticket_keys_t)


def new_ticket_keys():
    """Shared memory holding the ticket keys (fc_tls_ticket_keys_t), the first
    one random and current; made by the arbiter before it forks."""
    keys = mmap.mmap(-1, TICKET_KEYS_SIZE)  # MAP_SHARED | MAP_ANONYMOUS: the workers see its writes
    keys[8:8 + FC_TLS_TICKET_KEY_LEN] = os.urandom(FC_TLS_TICKET_KEY_LEN)
    struct.pack_into("=I", keys, 0, 0)
    return keys


def rotate_ticket_keys(keys):
    """A new current key; the one it replaces still decrypts (one rotation)."""
    current = struct.unpack_from("=I", keys, 0)[0] % 3
    slot = (current + 1) % 3  # neither current nor previous: no worker reads it
    keys[8 + slot * FC_TLS_TICKET_KEY_LEN:8 + (slot + 1) * FC_TLS_TICKET_KEY_LEN] = os.urandom(FC_TLS_TICKET_KEY_LEN)
    struct.pack_into("=I", keys, 0, slot)  # one aligned 4-byte store


STAPLE_SIZE = sizeof(fc_tls_staple_t)
STAPLE_MAX = FC_TLS_STAPLE_MAX
OCSP_STATUS = {FC_OCSP_GOOD: "good", FC_OCSP_REVOKED: "revoked", FC_OCSP_UNKNOWN: "unknown"}


def new_staples(int count):
    """Shared memory for the OCSP responses of `count` certificates (slot 0:
    the default certificate, then one per [[tls]] table), empty; made by the
    arbiter before it forks."""
    return mmap.mmap(-1, max(count, 1) * STAPLE_SIZE)


cdef fc_tls_staple_t *_staple(staples, int index) except NULL:
    cdef unsigned char[::1] view = staples
    if index < 0 or (index + 1) * STAPLE_SIZE > view.shape[0]:
        raise IndexError(f"no staple slot {index}")
    return <fc_tls_staple_t *>&view[index * STAPLE_SIZE]


def store_staple(staples, int index, bytes der, int64_t expires, str status):
    """Writes a checked response (ocsp_check) into slot `index` for every
    worker to staple; b"" empties the slot."""
    cdef int code = {name: code for code, name in OCSP_STATUS.items()}[status]
    if fc_ocsp_store(_staple(staples, index), der, len(der), expires, code) != 0:
        raise ValueError(f"an OCSP response of {len(der)} bytes (at most {STAPLE_MAX})")


def staple_state(staples, int index):
    """(bytes, expires, fetched, status) of slot `index`: the response's
    length (0: none), its nextUpdate and when it was stored (Unix seconds,
    0: none), the certificate's status in it."""
    cdef fc_tls_staple_t *staple = _staple(staples, index)
    return staple.len, staple.expires, staple.fetched, OCSP_STATUS.get(staple.status, "unknown")


def staple_response(staples, int index):
    """The DER response in slot `index` (b"" when empty). Read by the
    arbiter only, which alone writes: no lock needed."""
    cdef fc_tls_staple_t *staple = _staple(staples, index)
    return (<const unsigned char *>staple.der)[:staple.len]


def ocsp_request(str certfile):
    """(request, url): the DER OCSP request for the status of certfile's
    certificate, and the responder URL the certificate names ("" if none).
    Raises ValueError (one line) when the file has no issuer after it."""
    cdef unsigned char *der = NULL
    cdef size_t n = 0
    cdef char url[2048]
    cdef char err[1024]
    if fc_ocsp_request(certfile.encode(), &der, &n, url, sizeof(url), err, sizeof(err)) != 0:
        raise ValueError(err.decode("utf-8", "replace"))
    try:
        return der[:n], url.decode("utf-8", "replace")
    finally:
        free(der)


def ocsp_check(str certfile, bytes der):
    """(status, expires) of a response fit to staple to certfile's
    certificate: "good", "revoked" or "unknown", and its nextUpdate (Unix
    seconds, 0 if none). Raises ValueError (one line) for a response that
    is not: not successful, not signed by the issuer, not about this
    certificate, out of date."""
    cdef int status = 0
    cdef int64_t expires = 0
    cdef char err[1024]
    if fc_ocsp_check(certfile.encode(), der, len(der), &status, &expires, err, sizeof(err)) != 0:
        raise ValueError(err.decode("utf-8", "replace"))
    return OCSP_STATUS[status], expires


class TLSConfigError(ValueError):
    """A certificate, key or option OpenSSL refuses; the message is one line
    that starts with the setting's name."""


cdef class TLSContext:
    """The certificates of the TLS listeners: the default one (certfile,
    keyfile) and one per [[tls]] table, chosen by the client's SNI.

    names: (server_name, certfile, keyfile) tuples; ticket_keys: the shared
    memory of new_ticket_keys() (None: OpenSSL's key of this process, so a
    ticket resumes only on the worker that issued it); staples: the shared
    OCSP responses of new_staples() (None: no stapling), slot 0 for the
    default certificate; names may then be (server_name, certfile, keyfile,
    slot) for the slot of each table's certificate."""

    def __cinit__(self, str certfile, str keyfile, *, str ca_certs=None, str cert_reqs="none",
                  str min_version="1.2", str ciphers=None, ticket_keys=None, staples=None, bint ktls=False,
                  names=()):
        cdef fc_tls_options_t options
        cdef char err[1024]
        cdef bytes cert_b = certfile.encode(), key_b = keyfile.encode()
        cdef bytes ca_b = ca_certs.encode() if ca_certs is not None else None
        cdef bytes ciphers_b = ciphers.encode() if ciphers is not None else None
        cdef unsigned char[::1] keys_view
        if ticket_keys is not None:
            keys_view = ticket_keys
            if keys_view.shape[0] < TICKET_KEYS_SIZE:
                raise ValueError(f"ticket_keys: {TICKET_KEYS_SIZE} bytes expected")
            self.ticket_keys = ticket_keys  # the mapping outlives the contexts that read it
        options.ca_certs = NULL
        options.ciphers = NULL
        options.ticket_keys = NULL
        options.staple = NULL
        options.ktls = ktls
        if staples is not None:
            self.staples = staples  # mapped while the contexts staple from it
            options.staple = _staple(staples, 0)
        if ca_b is not None:
            options.ca_certs = ca_b
        if ciphers_b is not None:
            options.ciphers = ciphers_b
        if ticket_keys is not None:
            options.ticket_keys = <const fc_tls_ticket_keys_t *>&keys_view[0]
        options.cert_reqs = CERT_REQS[cert_reqs]
        options.min_version = MIN_VERSIONS[min_version]
        self.server = fc_tls_server_new(cert_b, key_b, &options, err, sizeof(err))
        if self.server == NULL:
            raise TLSConfigError(err.decode("utf-8", "replace"))
        found = []
        cdef const fc_tls_staple_t *staple
        for name, name_cert, name_key, *slot in names:
            staple = _staple(staples, slot[0]) if staples is not None and slot else NULL
            if fc_tls_server_add_name(self.server, name.lower().encode("ascii"),
                                      name_cert.encode(), name_key.encode(), staple, err, sizeof(err)) != 0:
                raise TLSConfigError(f"tls ({name}): {err.decode('utf-8', 'replace')}")
            found.append(name)
        self.server_names = tuple(found)

    def __dealloc__(self):
        fc_tls_server_free(self.server)

    cdef fc_tls_conn_t *new_connection(self, int fd) noexcept:
        return fc_tls_conn_new(self.server, fd)


cdef str _text(const char *s):
    return s.decode("utf-8", "replace") if s != NULL else None


cdef dict session_environ(fc_tls_conn_t *tls):
    """The keys Apache's mod_ssl (and nginx's $ssl_* variables) give an
    application, for an established session: HTTPS, SSL_PROTOCOL, SSL_CIPHER,
    SSL_TLS_SNI, SSL_SESSION_RESUMED, and with a verified client certificate
    SSL_CLIENT_VERIFY = SUCCESS, SSL_CLIENT_S_DN and SSL_CLIENT_I_DN (RFC 2253
    text); SSL_CLIENT_VERIFY = NONE without one."""
    cdef char subject[1024]
    cdef char issuer[1024]
    env = {"HTTPS": "on", "SSL_PROTOCOL": _text(fc_tls_protocol(tls)), "SSL_CIPHER": _text(fc_tls_cipher(tls)),
           "SSL_SESSION_RESUMED": "Resumed" if fc_tls_resumed(tls) else "Initial"}
    name = _text(fc_tls_server_name(tls))
    if name is not None:
        env["SSL_TLS_SNI"] = name
    if fc_tls_peer_names(tls, subject, sizeof(subject), issuer, sizeof(issuer)):
        env["SSL_CLIENT_VERIFY"] = "SUCCESS"
        env["SSL_CLIENT_S_DN"] = subject[:strlen(subject)].decode("utf-8", "replace")
        env["SSL_CLIENT_I_DN"] = issuer[:strlen(issuer)].decode("utf-8", "replace")
    else:
        env["SSL_CLIENT_VERIFY"] = "NONE"
    return env


DEF PEM_MAX = 16384


cdef dict session_scope(fc_tls_conn_t *tls):
    """The ASGI TLS extension (scope["extensions"]["tls"]): the certificate
    this server showed, the client's verified certificate (its PEM and
    subject, RFC 4514 text), the protocol and suite as numbers."""
    cdef char pem[PEM_MAX]
    cdef char subject[1024]
    cdef char issuer[1024]
    cdef size_t n = fc_tls_certificate_pem(tls, 0, pem, PEM_MAX)
    server_cert = pem[:n].decode("ascii") if n else None
    chain = []
    name = None
    if fc_tls_peer_names(tls, subject, sizeof(subject), issuer, sizeof(issuer)):
        name = subject[:strlen(subject)].decode("utf-8", "replace")
        n = fc_tls_certificate_pem(tls, 1, pem, PEM_MAX)
        if n:
            chain.append(pem[:n].decode("ascii"))
    return {"server_cert": server_cert, "client_cert_chain": chain, "client_cert_name": name,
            "client_cert_error": None, "tls_version": fc_tls_version_number(tls),
            "cipher_suite": fc_tls_cipher_number(tls) or None}
