/* Tests of fc_realip (who the client is) under ASan/UBSan, every input in a
 * guarded buffer so that a read past its end crashes. */
#define _GNU_SOURCE
#include "fc_test.h"

#include <arpa/inet.h>

#include "fc_realip.h"

static fc_cidr_t trusted[4];
static size_t n_trusted;

static void trust(const char *text)
{
    CHECK(fc_cidr_parse(text, strlen(text), &trusted[n_trusted]) == 0, "network %s", text);
    ++n_trusted;
}

static int parse(const char *text, uint8_t out[16])
{
    guarded_t g = guarded_copy(text, strlen(text));
    int rc = fc_addr_parse(g.data, strlen(text), out);
    guarded_free(g);
    return rc;
}

static const char *show(const uint8_t addr[16])
{
    static char text[64];
    fc_addr_format(addr, text, sizeof(text));
    return text;
}

static void test_addresses(void)
{
    static const struct {
        const char *in, *out;
    } good[] = {
        {"192.0.2.1", "192.0.2.1"}, {" 10.1.2.3 ", "10.1.2.3"}, {"192.0.2.43:47011", "192.0.2.43"},
        {"2001:db8::1", "2001:db8::1"}, {"[2001:db8::1]", "2001:db8::1"}, {"[2001:db8::1]:4711", "2001:db8::1"},
        {"::1", "::1"}, {"::ffff:1.2.3.4", "1.2.3.4"},
    };
    static const char *bad[] = {
        "", " ", "unknown", "_hidden", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.4:", "1.2.3.4:x", "[::1",
        "[::1]x", "[::1]:", "2001:db8::1::2", "1.2.3.4:123456",
        "0123456789012345678901234567890123456789012345678901234567890123456789",
    };
    uint8_t addr[16];
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); ++i) {
        int rc = parse(good[i].in, addr);
        CHECK(rc == 0 && strcmp(show(addr), good[i].out) == 0, "%s -> %s", good[i].in, rc ? "error" : show(addr));
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i)
        CHECK(parse(bad[i], addr) != 0, "%s parsed", bad[i]);
}

static void test_networks(void)
{
    fc_cidr_t net;
    uint8_t addr[16];
    CHECK(fc_cidr_parse("10.0.0.0/8", 10, &net) == 0 && net.bits == 104, "v4 /8");
    parse("10.200.3.4", addr);
    CHECK(fc_cidr_contains(&net, 1, addr), "inside /8");
    parse("11.0.0.1", addr);
    CHECK(!fc_cidr_contains(&net, 1, addr), "outside /8");
    CHECK(fc_cidr_parse("10.1.2.3/8", 10, &net) == 0 && net.addr[13] == 0, "host bits cleared");
    CHECK(fc_cidr_parse("192.168.1.0/23", 14, &net) == 0, "v4 /23");
    parse("192.168.0.255", addr);
    CHECK(fc_cidr_contains(&net, 1, addr), "/23 takes the even /24");
    parse("192.168.2.1", addr);
    CHECK(!fc_cidr_contains(&net, 1, addr), "/23 stops");
    CHECK(fc_cidr_parse("2001:db8::/32", 13, &net) == 0 && net.bits == 32, "v6 /32");
    parse("2001:db8:ffff::1", addr);
    CHECK(fc_cidr_contains(&net, 1, addr), "inside v6");
    parse("2001:db9::1", addr);
    CHECK(!fc_cidr_contains(&net, 1, addr), "outside v6");
    parse("1.2.3.4", addr);
    CHECK(!fc_cidr_contains(&net, 1, addr), "v4 never in a v6 network");
    CHECK(fc_cidr_parse("0.0.0.0/0", 9, &net) == 0, "all v4");
    CHECK(fc_cidr_contains(&net, 1, addr), "all v4 takes v4");
    CHECK(fc_cidr_parse("::1", 3, &net) == 0 && net.bits == 128, "host v6");
    CHECK(!fc_cidr_contains(&net, 0, addr), "empty set");
    static const char *bad[] = {"10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/x", "1.2.3.4:80", "[::1]", "x/8",
                                "10.0.0.0/0008"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        guarded_t g = guarded_copy(bad[i], strlen(bad[i]));
        CHECK(fc_cidr_parse(g.data, strlen(bad[i]), &net) != 0, "%s parsed", bad[i]);
        guarded_free(g);
    }
}

/* the client after walking `value` (one field) from the peer */
static const char *walk(fc_realip_kind_t kind, const char *value, const char *peer, int *done)
{
    uint8_t client[16];
    parse(peer, client);
    guarded_t g = guarded_copy(value, strlen(value));
    *done = fc_realip_walk(kind, g.data, strlen(value), trusted, n_trusted, client);
    guarded_free(g);
    return show(client);
}

static void test_walk(void)
{
    int done;
    n_trusted = 0;
    trust("127.0.0.0/8");
    trust("10.0.0.0/8");
    /* the rightmost untrusted address */
    CHECK(strcmp(walk(FC_REALIP_X_FORWARDED_FOR, "203.0.113.7, 10.0.0.2", "127.0.0.1", &done), "203.0.113.7") == 0
              && done, "through a trusted hop");
    /* a spoofed left part is never believed past an untrusted hop */
    CHECK(strcmp(walk(FC_REALIP_X_FORWARDED_FOR, "6.6.6.6, 203.0.113.7", "127.0.0.1", &done), "203.0.113.7") == 0,
          "spoof on the left");
    /* all trusted: the leftmost, and the walk goes on to an earlier field */
    CHECK(strcmp(walk(FC_REALIP_X_FORWARDED_FOR, "10.0.0.3,10.0.0.2", "127.0.0.1", &done), "10.0.0.3") == 0 &&
              !done, "all trusted");
    /* garbage: the last good address */
    CHECK(strcmp(walk(FC_REALIP_X_FORWARDED_FOR, "unknown, 10.0.0.2", "127.0.0.1", &done), "10.0.0.2") == 0 && done,
          "garbage stops");
    CHECK(strcmp(walk(FC_REALIP_X_FORWARDED_FOR, "", "127.0.0.1", &done), "127.0.0.1") == 0 && !done, "empty");
    CHECK(strcmp(walk(FC_REALIP_X_FORWARDED_FOR, " , ,", "127.0.0.1", &done), "127.0.0.1") == 0, "commas");
    CHECK(strcmp(walk(FC_REALIP_X_FORWARDED_FOR, "2001:db8::5", "127.0.0.1", &done), "2001:db8::5") == 0, "v6");
    CHECK(strcmp(walk(FC_REALIP_X_REAL_IP, " 198.51.100.9 ", "127.0.0.1", &done), "198.51.100.9") == 0 && done,
          "X-Real-IP");
    CHECK(strcmp(walk(FC_REALIP_CF_CONNECTING_IP, "nonsense", "127.0.0.1", &done), "127.0.0.1") == 0 && done,
          "CF-Connecting-IP garbage");
    /* RFC 7239 */
    CHECK(strcmp(walk(FC_REALIP_FORWARDED, "for=192.0.2.60;proto=http;by=203.0.113.43", "127.0.0.1", &done),
                 "192.0.2.60") == 0, "Forwarded one element");
    CHECK(strcmp(walk(FC_REALIP_FORWARDED, "for=\"[2001:db8:cafe::17]:4711\", For=10.0.0.9", "127.0.0.1", &done),
                 "2001:db8:cafe::17") == 0, "Forwarded quoted v6 with port, through a trusted hop");
    CHECK(strcmp(walk(FC_REALIP_FORWARDED, "for=6.6.6.6, for=198.51.100.1;proto=\"a,b\"", "127.0.0.1", &done),
                 "198.51.100.1") == 0, "Forwarded: a comma inside quotes is no element");
    CHECK(strcmp(walk(FC_REALIP_FORWARDED, "for=_hidden, for=10.0.0.9", "127.0.0.1", &done), "10.0.0.9") == 0 &&
              done, "Forwarded obfuscated node stops");
    CHECK(strcmp(walk(FC_REALIP_FORWARDED, "proto=https", "127.0.0.1", &done), "127.0.0.1") == 0 && done,
          "Forwarded without for");
    CHECK(strcmp(walk(FC_REALIP_FORWARDED, "for=\"unterminated", "127.0.0.1", &done), "127.0.0.1") == 0,
          "Forwarded unterminated quote");
    /* many elements: the rightmost ones are walked */
    char many[4096] = "";
    for (int i = 0; i < 100; ++i)
        strcat(many, "for=10.0.0.1, ");
    strcat(many, "for=10.0.0.2");
    CHECK(strcmp(walk(FC_REALIP_FORWARDED, many, "127.0.0.1", &done), "10.0.0.1") == 0 && done,
          "long Forwarded chain is cut on the left");
}

static int proto(const char *value)
{
    guarded_t g = guarded_copy(value, strlen(value));
    int answer = fc_forwarded_proto(g.data, strlen(value));
    guarded_free(g);
    return answer;
}

static void test_proto(void)
{
    CHECK(proto("https") == FC_PROTO_HTTPS, "https");
    CHECK(proto("HTTP") == FC_PROTO_HTTP, "HTTP");
    CHECK(proto("http, https ") == FC_PROTO_HTTPS, "the last hop's");
    CHECK(proto("https,http") == FC_PROTO_HTTP, "the last hop's, http");
    CHECK(proto("") == 0 && proto("ftp") == 0 && proto("httpss") == 0 && proto("https,") == 0 && proto("htt") == 0,
          "others");
}

int main(void)
{
    test_proto();
    test_addresses();
    test_networks();
    test_walk();
    printf("fc_realip: %d checks, %d failures\n", checks, failures);
    return failures != 0;
}
