# Declarations of src_c/fc_ocsp.h: OCSP requests, the check of responses,
# and the store into a shared fc_tls_staple_t (the arbiter's side of stapling).
from libc.stdint cimport int64_t
from fastcore._core.includes.fc_tls cimport fc_tls_staple_t


cdef extern from "fc_ocsp.h" nogil:
    enum:
        FC_OCSP_GOOD
        FC_OCSP_REVOKED
        FC_OCSP_UNKNOWN

    int fc_ocsp_request(const char *certfile, unsigned char **der, size_t *len, char *url, size_t urllen,
                        char *err, size_t errlen)
    int fc_ocsp_check(const char *certfile, const unsigned char *der, size_t len, int *status, int64_t *expires,
                      char *err, size_t errlen)
    int fc_ocsp_store(fc_tls_staple_t *staple, const unsigned char *der, size_t len, int64_t expires, int status)
