/* fc_forward.c: see fc_forward.h. */
#include "fc_forward.h"

#include "fc_text.h"

/* Field names are tokens: fc_token_eq's `| 0x20` folding applies. The switch
 * on length keeps a typical name to one or two comparisons. */
fc_field_kind_t fc_field_kind(const char *name, size_t len)
{
    if (len > 6 && ((name[0] | 0x20) == 'p') && fc_token_eq(name, 6, FC_LIT("proxy-")))
        return FC_FIELD_HOP_BY_HOP;
    switch (len) {
    case 2:
        return fc_token_eq(name, len, FC_LIT("te")) ? FC_FIELD_HOP_BY_HOP : FC_FIELD_END_TO_END;
    case 4:
        return fc_token_eq(name, len, FC_LIT("host")) ? FC_FIELD_HOST : FC_FIELD_END_TO_END;
    case 6:
        return fc_token_eq(name, len, FC_LIT("expect")) ? FC_FIELD_EXPECT : FC_FIELD_END_TO_END;
    case 7:
        if (fc_token_eq(name, len, FC_LIT("upgrade")))
            return FC_FIELD_UPGRADE;
        return fc_token_eq(name, len, FC_LIT("trailer")) ? FC_FIELD_HOP_BY_HOP : FC_FIELD_END_TO_END;
    case 9:
        if (fc_token_eq(name, len, FC_LIT("x-real-ip")))
            return FC_FIELD_X_REAL_IP;
        return fc_token_eq(name, len, FC_LIT("forwarded")) ? FC_FIELD_FORWARDED : FC_FIELD_END_TO_END;
    case 10:
        if (fc_token_eq(name, len, FC_LIT("connection")))
            return FC_FIELD_CONNECTION;
        return fc_token_eq(name, len, FC_LIT("keep-alive")) ? FC_FIELD_HOP_BY_HOP : FC_FIELD_END_TO_END;
    case 14:
        return fc_token_eq(name, len, FC_LIT("content-length")) ? FC_FIELD_CONTENT_LENGTH : FC_FIELD_END_TO_END;
    case 15:
        return fc_token_eq(name, len, FC_LIT("x-forwarded-for")) ? FC_FIELD_X_FORWARDED_FOR : FC_FIELD_END_TO_END;
    case 16:
        return fc_token_eq(name, len, FC_LIT("x-forwarded-host")) ? FC_FIELD_X_FORWARDED_HOST : FC_FIELD_END_TO_END;
    case 17:
        if (fc_token_eq(name, len, FC_LIT("x-forwarded-proto")))
            return FC_FIELD_X_FORWARDED_PROTO;
        return fc_token_eq(name, len, FC_LIT("transfer-encoding")) ? FC_FIELD_HOP_BY_HOP : FC_FIELD_END_TO_END;
    default:
        return FC_FIELD_END_TO_END;
    }
}

static int fc_fold_eq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x |= 0x20;
        if (y >= 'A' && y <= 'Z')
            y |= 0x20;
        if (x != y)
            return 0;
    }
    return 1;
}

int fc_list_names(const char *list, size_t list_len, const char *name, size_t name_len)
{
    size_t i = 0;
    while (i < list_len) {
        while (i < list_len && (list[i] == ' ' || list[i] == '\t' || list[i] == ','))
            ++i;
        size_t start = i;
        while (i < list_len && list[i] != ',')
            ++i;
        size_t end = i;
        while (end > start && (list[end - 1] == ' ' || list[end - 1] == '\t'))
            --end;
        if (end - start == name_len && name_len && fc_fold_eq(list + start, name, name_len))
            return 1;
    }
    return 0;
}
