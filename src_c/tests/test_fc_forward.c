/* Tests of fc_forward (what a header field is to a proxy) under ASan/UBSan,
 * every input in a guarded buffer so that a read past its end crashes. */
#define _GNU_SOURCE
#include "fc_test.h"

#include "fc_forward.h"

static fc_field_kind_t kind_of(const char *name)
{
    guarded_t g = guarded_copy(name, strlen(name));
    fc_field_kind_t kind = fc_field_kind(g.data, strlen(name));
    guarded_free(g);
    return kind;
}

static int names(const char *list, const char *name)
{
    guarded_t l = guarded_copy(list, strlen(list));
    guarded_t n = guarded_copy(name, strlen(name));
    int answer = fc_list_names(l.data, strlen(list), n.data, strlen(name));
    guarded_free(l);
    guarded_free(n);
    return answer;
}

static void test_kinds(void)
{
    static const struct {
        const char *name;
        fc_field_kind_t kind;
    } cases[] = {
        {"Connection", FC_FIELD_CONNECTION}, {"connection", FC_FIELD_CONNECTION},
        {"CONNECTION", FC_FIELD_CONNECTION}, {"Keep-Alive", FC_FIELD_HOP_BY_HOP},
        {"TE", FC_FIELD_HOP_BY_HOP}, {"te", FC_FIELD_HOP_BY_HOP}, {"Trailer", FC_FIELD_HOP_BY_HOP},
        {"Transfer-Encoding", FC_FIELD_HOP_BY_HOP}, {"Upgrade", FC_FIELD_UPGRADE},
        {"Proxy-Authorization", FC_FIELD_HOP_BY_HOP}, {"Proxy-Connection", FC_FIELD_HOP_BY_HOP},
        {"proxy-anything", FC_FIELD_HOP_BY_HOP}, {"Host", FC_FIELD_HOST}, {"HOST", FC_FIELD_HOST},
        {"Content-Length", FC_FIELD_CONTENT_LENGTH}, {"Expect", FC_FIELD_EXPECT},
        {"X-Forwarded-For", FC_FIELD_X_FORWARDED_FOR}, {"x-forwarded-proto", FC_FIELD_X_FORWARDED_PROTO},
        {"X-Forwarded-Host", FC_FIELD_X_FORWARDED_HOST}, {"X-Real-IP", FC_FIELD_X_REAL_IP},
        {"Forwarded", FC_FIELD_FORWARDED}, {"FORWARDED", FC_FIELD_FORWARDED}, {"Forwarder", FC_FIELD_END_TO_END},
        /* near misses stay end to end */
        {"Proxy", FC_FIELD_END_TO_END}, {"Proxy-", FC_FIELD_END_TO_END}, {"Hosts", FC_FIELD_END_TO_END},
        {"Connections", FC_FIELD_END_TO_END}, {"T", FC_FIELD_END_TO_END}, {"TEE", FC_FIELD_END_TO_END},
        {"X-Forwarded-Fort", FC_FIELD_END_TO_END}, {"Content-Type", FC_FIELD_END_TO_END},
        {"Keep_Alive", FC_FIELD_END_TO_END}, {"Upgrade-Insecure-Requests", FC_FIELD_END_TO_END},
        {"X-Custom", FC_FIELD_END_TO_END}, {"", FC_FIELD_END_TO_END},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i)
        CHECK(kind_of(cases[i].name) == cases[i].kind, "%s: %d, wanted %d", cases[i].name,
              kind_of(cases[i].name), cases[i].kind);
}

static void test_lists(void)
{
    CHECK(names("keep-alive, X-Secret", "x-secret"), "second token");
    CHECK(names("X-Secret", "X-SECRET"), "only token, any case");
    CHECK(names("  x-secret  ,close", "X-Secret"), "whitespace around");
    CHECK(names(",,x-secret,,", "x-secret"), "empty elements");
    CHECK(names("a,\tb\t,c", "b"), "tabs");
    CHECK(!names("x-secrets", "x-secret"), "a longer token is another");
    CHECK(!names("x-secret", "x-secrets"), "a shorter token is another");
    CHECK(!names("close", "x-secret"), "absent");
    CHECK(!names("", "x-secret"), "empty list");
    CHECK(!names("x-secret", ""), "empty name never matches");
    CHECK(!names("a b", "a"), "inner space is part of the token");
}

int main(void)
{
    test_kinds();
    test_lists();
    printf("%d checks, %d failed\n", checks, failures);
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures ? 1 : 0;
}
