/* Nanoseconds per request of the C head parser on one request file, at
 * each SIMD level the CPU has. With a third argument (a level: 0 scalar,
 * 1 SSE2, 2 AVX2) it parses `iterations` times at that level only, once,
 * and prints nothing: the instruction-count gate (bench/cost) runs it so. Usage: bench_fc_http FILE [iterations]
 * Prints one line per level, for the head parse alone (what picohttpparser's
 * phr_parse_request does) and with fc_http_request_info (framing facts). */
#define _POSIX_C_SOURCE 199309L
#include "fc_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE [iterations]\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 2;
    }
    static char buf[65536];
    size_t len = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    long iterations = argc > 2 ? atol(argv[2]) : 2000000;
    if (argc > 3) {
        fc_http_limits_t lim = {8190, 32768};
        fc_header_t hs[100];
        fc_http_set_simd((fc_simd_level_t)atoi(argv[3]));
        for (long i = 0; i < iterations; ++i) {
            fc_request_head_t req = {.headers = hs, .num_headers = 100};
            fc_request_info_t info;
            if (fc_http_parse_request(buf, len, 0, &lim, &req) <= 0 || fc_http_request_info(&req, &info) != 0)
                return 1;
        }
        return 0;
    }
    static const char *names[] = {"scalar", "sse2", "avx2"};
    fc_http_limits_t limits = {8190, 32768};
    fc_header_t headers[100];
    fc_simd_level_t top = fc_http_set_simd(FC_SIMD_AVX2);
    for (int with_info = 0; with_info <= 1; ++with_info)
    for (int level = 0; level <= (int)top; ++level) {
        fc_http_set_simd((fc_simd_level_t)level);
        double best = 1e18;
        for (int round = 0; round < 5; ++round) {
            volatile int sink = 0;
            double t0 = now_ns();
            for (long i = 0; i < iterations; ++i) {
                fc_request_head_t req = {.headers = headers, .num_headers = 100};
                fc_request_info_t info;
                int rc = fc_http_parse_request(buf, len, 0, &limits, &req);
                if (rc <= 0 || (with_info && fc_http_request_info(&req, &info) != 0)) {
                    fprintf(stderr, "parse failed: rc %d error %d\n", rc, req.error);
                    return 1;
                }
                sink += rc;
            }
            double per = (now_ns() - t0) / (double)iterations;
            if (per < best)
                best = per;
        }
        printf("fc_http %-6s %-22s %6.1f ns/request (%zu bytes)\n", names[level],
               with_info ? "head + framing facts:" : "head:", best, len);
    }
    return 0;
}
