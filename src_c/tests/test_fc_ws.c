/* Tests of fc_ws (WebSocket frames) under ASan/UBSan, every header in a
 * guarded buffer so that a read past its end crashes. */
#define _GNU_SOURCE
#include "fc_test.h"

#include <stdint.h>

#include "fc_ws.h"

static int parse(const uint8_t *bytes, size_t len, fc_ws_frame_t *frame)
{
    guarded_t g = guarded_copy((const char *)bytes, len);
    int rc = fc_ws_parse_header((const uint8_t *)g.data, len, frame);
    guarded_free(g);
    return rc;
}

static void test_headers(void)
{
    fc_ws_frame_t f;
    /* RFC 6455 section 5.7's examples: a masked "Hello", 256 and 65536 bytes */
    static const uint8_t hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    static const uint8_t mid[] = {0x82, 0xFE, 0x01, 0x00, 1, 2, 3, 4};
    static const uint8_t big[] = {0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4};
    CHECK(parse(hello, 6, &f) == 6 && f.fin && f.opcode == FC_WS_TEXT && f.masked && f.length == 5 &&
              f.mask[0] == 0x37 && f.mask[3] == 0x3d, "masked Hello");
    for (size_t n = 0; n < 6; ++n)
        CHECK(parse(hello, n, &f) == -2, "Hello cut at %zu is partial", n);
    CHECK(parse(mid, sizeof(mid), &f) == 8 && f.length == 256 && f.opcode == FC_WS_BINARY, "16-bit length");
    for (size_t n = 0; n < sizeof(mid); ++n)
        CHECK(parse(mid, n, &f) == -2, "16-bit cut at %zu is partial", n);
    CHECK(parse(big, sizeof(big), &f) == 14 && f.length == 65536, "64-bit length");
    for (size_t n = 0; n < sizeof(big); ++n)
        CHECK(parse(big, n, &f) == -2, "64-bit cut at %zu is partial", n);

    uint8_t payload[5];
    CHECK(parse(hello, 6, &f) == 6, "Hello's mask again");
    memcpy(payload, hello + 6, 5);
    fc_ws_unmask(payload, 5, f.mask, 0);
    CHECK(memcmp(payload, "Hello", 5) == 0, "unmasked Hello");
}

static void test_unmask_in_pieces(void)
{
    uint8_t data[1000], copy[1000];
    const uint8_t mask[4] = {0xa1, 0x02, 0x7f, 0xe4};
    for (size_t i = 0; i < sizeof(data); ++i)
        data[i] = (uint8_t)(i * 7);
    memcpy(copy, data, sizeof(data));
    fc_ws_unmask(copy, sizeof(copy), mask, 0);
    for (size_t i = 0; i < sizeof(data); ++i)
        CHECK((copy[i] ^ mask[i & 3]) == data[i], "byte %zu", i);
    /* the same in uneven pieces, each told its offset: the same result */
    uint8_t pieces[1000];
    memcpy(pieces, data, sizeof(data));
    size_t at = 0, step = 1;
    while (at < sizeof(pieces)) {
        size_t n = at + step > sizeof(pieces) ? sizeof(pieces) - at : step;
        fc_ws_unmask(pieces + at, n, mask, at);
        at += n;
        step = step * 3 % 37 + 1;
    }
    CHECK(memcmp(pieces, copy, sizeof(copy)) == 0, "pieces");
}

static void test_checks(void)
{
    fc_ws_frame_t f = {.fin = 1, .rsv = 0, .opcode = FC_WS_TEXT, .masked = 1, .length = 10};
    CHECK(fc_ws_check(&f, 0, 0, 0, 100) == 0, "a text frame");
    f.masked = 0;
    CHECK(fc_ws_check(&f, 0, 0, 0, 100) == 1002, "unmasked");
    f.masked = 1;
    f.rsv = FC_WS_RSV1;
    CHECK(fc_ws_check(&f, 0, 0, 0, 100) == 1002, "RSV1 not agreed");
    CHECK(fc_ws_check(&f, 0, FC_WS_RSV1, 0, 100) == 0, "RSV1 agreed");
    f.rsv = 0x20;
    CHECK(fc_ws_check(&f, 0, FC_WS_RSV1, 0, 100) == 1002, "RSV2");
    f.rsv = 0;
    CHECK(fc_ws_check(&f, 1, 0, 0, 100) == 1002, "a new message inside a fragmented one");
    f.opcode = FC_WS_CONTINUATION;
    CHECK(fc_ws_check(&f, 0, 0, 0, 100) == 1002, "a continuation of nothing");
    CHECK(fc_ws_check(&f, 1, 0, 90, 100) == 0, "a continuation up to the limit");
    CHECK(fc_ws_check(&f, 1, 0, 91, 100) == 1009, "a continuation over the limit");
    f.opcode = FC_WS_BINARY;
    f.length = 101;
    CHECK(fc_ws_check(&f, 0, 0, 0, 100) == 1009, "over the limit");
    f.length = UINT64_C(1) << 63;
    CHECK(fc_ws_check(&f, 0, 0, 0, 100) == 1002, "top bit of the length");
    f.length = UINT64_MAX >> 1;
    CHECK(fc_ws_check(&f, 0, 0, 0, UINT64_MAX >> 1) == 0, "no overflow at the largest length");
    f.opcode = 0x3;
    f.length = 1;
    CHECK(fc_ws_check(&f, 0, 0, 0, 100) == 1002, "reserved opcode");
    f.opcode = FC_WS_PING;
    CHECK(fc_ws_check(&f, 1, 0, 0, 100) == 0, "a ping inside a fragmented message");
    f.length = 126;
    CHECK(fc_ws_check(&f, 0, 0, 0, 1000) == 1002, "a 126-byte ping");
    f.length = 1;
    f.fin = 0;
    CHECK(fc_ws_check(&f, 0, 0, 0, 100) == 1002, "a fragmented ping");
}

static void test_write_header(void)
{
    uint8_t out[FC_WS_MAX_HEADER];
    fc_ws_frame_t f;
    static const uint64_t lengths[] = {0, 125, 126, 65535, 65536, UINT64_C(1) << 40};
    static const int sizes[] = {2, 2, 4, 4, 10, 10};
    for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); ++i) {
        int n = fc_ws_write_header(out, FC_WS_FIN | FC_WS_BINARY, lengths[i]);
        out[1] |= 0x80;  /* parse it back as if masked (mask zero) */
        memset(out + n, 0, 4);
        CHECK(n == sizes[i] && parse(out, (size_t)n + 4, &f) == n + 4 && f.length == lengths[i] && f.fin &&
                  f.opcode == FC_WS_BINARY, "length %llu", (unsigned long long)lengths[i]);
    }
}

static void test_close_codes(void)
{
    static const unsigned good[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999};
    static const unsigned bad[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); ++i)
        CHECK(fc_ws_close_code_valid(good[i]), "%u valid", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i)
        CHECK(!fc_ws_close_code_valid(bad[i]), "%u invalid", bad[i]);
}

int main(void)
{
    test_headers();
    test_unmask_in_pieces();
    test_checks();
    test_write_header();
    test_close_codes();
    printf("fc_ws: %d checks, %d failures\n", checks, failures);
    return failures != 0;
}
