# Declarations of src_c/fc_forward.h (what a header field is to a proxy).

cdef extern from "fc_forward.h" nogil:
    ctypedef enum fc_field_kind_t:
        FC_FIELD_END_TO_END
        FC_FIELD_HOP_BY_HOP
        FC_FIELD_CONNECTION
        FC_FIELD_UPGRADE
        FC_FIELD_HOST
        FC_FIELD_CONTENT_LENGTH
        FC_FIELD_EXPECT
        FC_FIELD_X_FORWARDED_FOR
        FC_FIELD_X_FORWARDED_PROTO
        FC_FIELD_X_FORWARDED_HOST
        FC_FIELD_X_REAL_IP
        FC_FIELD_FORWARDED

    fc_field_kind_t fc_field_kind(const char *name, size_t len)
    int fc_list_names(const char *list, size_t list_len, const char *name, size_t name_len)
