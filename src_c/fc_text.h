/* fc_text.h: small ASCII helpers shared by the C core's files (internal,
 * not part of any public header). */
#ifndef FC_TEXT_H
#define FC_TEXT_H

#include <stddef.h>

/* Case-insensitive compare of a token against a lowercase literal of
 * letters, digits and '-'. `| 0x20` is safe on token bytes: only the two
 * cases of a letter fold onto a letter, and '-' and digits onto themselves;
 * CR (never accepted where this is called) would fold onto '-'. */
static inline int fc_token_eq(const char *s, size_t n, const char *lower, size_t lower_len)
{
    if (n != lower_len)
        return 0;
    for (size_t i = 0; i < n; ++i)
        if (((unsigned char)s[i] | 0x20) != (unsigned char)lower[i])
            return 0;
    return 1;
}

/* 0-15 for a hex digit of either case, else -1 */
static inline int fc_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* a string literal as the (pointer, length) pair of fc_token_eq */
#define FC_LIT(s) s, sizeof(s) - 1

#endif /* FC_TEXT_H */
