/* Tests of fc_limits (the shared per-client limits table) under ASan/UBSan. */
#define _GNU_SOURCE
#include "fc_test.h"

#include <signal.h>
#include <sys/wait.h>

#include "fc_limits.h"

static fc_limits_t *make_table(size_t entries, size_t *bytes)
{
    *bytes = fc_limits_size(entries);
    fc_limits_t *t = mmap(NULL, *bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (t == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    fc_limits_init(t, entries, 0x1234567890abcdefull);
    return t;
}

static void v4(uint8_t addr[16], uint32_t ip)
{
    memset(addr, 0, 16);
    addr[10] = addr[11] = 0xff;
    addr[12] = (uint8_t)(ip >> 24);
    addr[13] = (uint8_t)(ip >> 16);
    addr[14] = (uint8_t)(ip >> 8);
    addr[15] = (uint8_t)ip;
}

static void test_size(void)
{
    CHECK(fc_limits_size(1) == sizeof(fc_limits_t) + 256, "one bucket");
    CHECK(fc_limits_size(7) == sizeof(fc_limits_t) + 256, "seven keys in one bucket");
    CHECK(fc_limits_size(8) == sizeof(fc_limits_t) + 512, "eight need two");
    CHECK(fc_limits_size(65536) == sizeof(fc_limits_t) + 16384 * 256, "65536 keys: 16384 buckets (4 MiB)");
}

/* nginx's limit_req at 10 r/s, burst 0: one request each 100 ms */
static void test_rate(void)
{
    /* the table right before a PROT_NONE page: a write past it crashes */
    guarded_t g = guarded_alloc(fc_limits_size(64));
    fc_limits_t *t = (fc_limits_t *)g.data;
    fc_limits_init(t, 64, 42);
    uint8_t addr[16];
    uint64_t wait;
    v4(addr, 0x7f000002);
    fc_limit_key_t key = fc_limit_key(addr, 1);
    fc_limit_rule_t rule = {.rate = 10000, .burst = 0};
    CHECK(fc_limit_request(t, key, 1000, &rule, &wait) == FC_LIMIT_PASS, "first passes");
    CHECK(fc_limit_request(t, key, 1050, &rule, &wait) == FC_LIMIT_RATE, "50 ms later: too soon");
    CHECK(wait >= 49 && wait <= 51, "retry in ~50 ms, said %llu", (unsigned long long)wait);
    CHECK(fc_limit_request(t, key, 1100, &rule, &wait) == FC_LIMIT_PASS, "100 ms later: passes");
    /* a refused request changes nothing: the next 100 ms slot still passes */
    CHECK(fc_limit_request(t, key, 1150, &rule, &wait) == FC_LIMIT_RATE, "refused");
    CHECK(fc_limit_request(t, key, 1200, &rule, &wait) == FC_LIMIT_PASS, "next slot");
    /* over 10 s of requests every ms: 100 let through, +1 for the one at the start */
    int passed = 0;
    for (uint64_t now = 10000; now < 20000; ++now)
        passed += fc_limit_request(t, key, now, &rule, &wait) == FC_LIMIT_PASS;
    CHECK(passed == 100, "10 r/s for 10 s: %d passed", passed);
    /* another zone is another key */
    fc_limit_key_t other = fc_limit_key(addr, 2);
    CHECK(fc_limit_request(t, other, 20000, &rule, &wait) == FC_LIMIT_PASS, "other zone");
    /* burst 5 delayed: 5 more pass with growing delays, the 7th is refused */
    fc_limit_rule_t bursty = {.rate = 10000, .burst = 5000};
    v4(addr, 0x7f000003);
    key = fc_limit_key(addr, 1);
    CHECK(fc_limit_request(t, key, 50000, &bursty, &wait) == FC_LIMIT_PASS, "burst first");
    for (int i = 1; i <= 5; ++i) {
        CHECK(fc_limit_request(t, key, 50000, &bursty, &wait) == FC_LIMIT_DELAY && wait == (uint64_t)i * 100,
              "burst %d delayed %llu", i, (unsigned long long)wait);
    }
    CHECK(fc_limit_request(t, key, 50000, &bursty, &wait) == FC_LIMIT_RATE && wait == 101, "burst over: %llu",
          (unsigned long long)wait);
    /* fractional rate: 0.5 r/s */
    fc_limit_rule_t slow = {.rate = 500, .burst = 0};
    v4(addr, 0x7f000004);
    key = fc_limit_key(addr, 1);
    CHECK(fc_limit_request(t, key, 1000, &slow, &wait) == FC_LIMIT_PASS, "slow first");
    CHECK(fc_limit_request(t, key, 2500, &slow, &wait) == FC_LIMIT_RATE && wait == 501, "slow: 1.5 s is too soon");
    CHECK(fc_limit_request(t, key, 3000, &slow, &wait) == FC_LIMIT_PASS, "slow: 2 s later");
    /* a clock read out of order never goes negative */
    CHECK(fc_limit_request(t, key, 10, &slow, &wait) == FC_LIMIT_RATE, "time backwards");
    guarded_free(g);
}

static void test_conn(void)
{
    size_t bytes, held;
    fc_limits_t *t = make_table(64, &bytes);
    uint8_t addr[16];
    uint64_t wait;
    v4(addr, 0x0a000001);
    fc_limit_key_t key = fc_limit_key(addr, 1);
    fc_limit_rule_t rule = {.conn = 2};
    CHECK(fc_limit_request(t, key, 1, &rule, &wait) == FC_LIMIT_PASS, "1st");
    CHECK(fc_limit_request(t, key, 1, &rule, &wait) == FC_LIMIT_PASS, "2nd");
    CHECK(fc_limit_request(t, key, 1, &rule, &wait) == FC_LIMIT_CONN, "3rd refused");
    CHECK(fc_limits_used(t, &held) == 1 && held == 1, "one entry holds");
    fc_limit_release(t, key);
    CHECK(fc_limit_request(t, key, 2, &rule, &wait) == FC_LIMIT_PASS, "after a release");
    fc_limit_release(t, key);
    fc_limit_release(t, key);
    fc_limit_release(t, key); /* one too many: no wrap */
    CHECK(fc_limits_used(t, &held) == 1 && held == 0, "released, no wrap");
    CHECK(fc_limit_request(t, key, 3, &rule, &wait) == FC_LIMIT_PASS, "again 1");
    CHECK(fc_limit_request(t, key, 3, &rule, &wait) == FC_LIMIT_PASS, "again 2");
    CHECK(fc_limit_request(t, key, 3, &rule, &wait) == FC_LIMIT_CONN, "again refused");
    /* dry run: counted and reported, the request goes on */
    fc_limit_rule_t dry = {.conn = 2, .dry_run = 1};
    CHECK(fc_limit_request(t, key, 3, &dry, &wait) == FC_LIMIT_CONN, "dry run reports");
    CHECK(fc_limits_used(t, &held) == 1 && held == 1, "still one entry");
    fc_limit_release(t, key);
    munmap(t, bytes);
}

/* IPv6 clients are keyed by their /64; IPv4 never meets IPv6 */
static void test_keys(void)
{
    uint8_t a[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1};
    uint8_t b[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 9};
    uint8_t c[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1};
    uint8_t d[16];
    /* the address read from the end of a guarded page: 16 bytes, not one more */
    guarded_t g = guarded_copy((const char *)a, 16);
    fc_limit_key_t ka = fc_limit_key((const uint8_t *)g.data, 1), kb = fc_limit_key(b, 1), kc = fc_limit_key(c, 1);
    CHECK(ka.prefix == kb.prefix && ka.tag == kb.tag, "same /64, same key");
    CHECK(ka.prefix != kc.prefix, "another /64");
    v4(d, 0x01020304);
    fc_limit_key_t kd = fc_limit_key(d, 1);
    CHECK(kd.tag == 3 && ka.tag == 2, "families apart");
    guarded_free(g);
}

/* 1,000,000 distinct clients through a 4096-entry table: memory never
 * grows (the mapping is all there is), the entries in use never pass the
 * capacity, and a client refused over and over is not evicted by the crowd
 * while it keeps coming. */
static void test_bound(void)
{
    size_t bytes;
    fc_limits_t *t = make_table(4096, &bytes);
    uint8_t addr[16], hot[16];
    uint64_t wait;
    fc_limit_rule_t rule = {.rate = 1000, .burst = 0};
    v4(hot, 0xc6336401);
    fc_limit_key_t hot_key = fc_limit_key(hot, 1);
    int hot_refused = 0, hot_passed = 0;
    for (uint32_t i = 0; i < 1000000; ++i) {
        uint64_t now = 1000000 + i / 1000;  /* 1000 new clients a millisecond */
        v4(addr, 0x0b000000 + i);
        fc_limit_request(t, fc_limit_key(addr, 1), now, &rule, &wait);
        if (i % 100 == 0) {
            fc_limit_result_t r = fc_limit_request(t, hot_key, now, &rule, &wait);
            hot_refused += r == FC_LIMIT_RATE;
            hot_passed += r == FC_LIMIT_PASS;
        }
    }
    CHECK(fc_limits_used(t, NULL) <= fc_limits_capacity(t), "used %zu > capacity %zu", fc_limits_used(t, NULL),
          fc_limits_capacity(t));
    CHECK(fc_limits_used(t, NULL) >= fc_limits_capacity(t) * 9 / 10, "the table fills: %zu", fc_limits_used(t, NULL));
    CHECK(fc_limits_capacity(t) == 4102 || fc_limits_capacity(t) == 7 * 1024, "capacity %zu", fc_limits_capacity(t));
    CHECK(bytes == sizeof(fc_limits_t) + 1024 * 256, "bytes %zu", bytes);
    CHECK(t->evictions >= 1000000 - fc_limits_capacity(t), "evictions %llu", (unsigned long long)t->evictions);
    /* 1000 s of load at 1 r/s: the hot client asked 10,000 times in 1000 ms windows */
    CHECK(hot_passed <= 1001 && hot_refused >= 8999, "hot client kept: %d passed, %d refused", hot_passed,
          hot_refused);
    munmap(t, bytes);
}

/* several processes on one key through the shared mapping: every request
 * counted once (no lost update), and the limit holds across them */
static void test_processes(void)
{
    size_t bytes;
    fc_limits_t *t = make_table(64, &bytes);
    uint8_t addr[16];
    v4(addr, 0x7f000009);
    fc_limit_key_t key = fc_limit_key(addr, 1);
    enum { WORKERS = 4, ROUNDS = 20000 };
    pid_t pids[WORKERS];
    for (int w = 0; w < WORKERS; ++w) {
        pids[w] = fork();
        if (pids[w] == 0) {
            fc_limit_rule_t rule = {.conn = 1000000};
            uint64_t wait;
            for (int i = 0; i < ROUNDS; ++i) {
                fc_limit_request(t, key, 1, &rule, &wait);
                if (i % 2)
                    fc_limit_release(t, key);
            }
            _exit(0);
        }
    }
    for (int w = 0; w < WORKERS; ++w)
        waitpid(pids[w], NULL, 0);
    fc_limit_bucket_t *b = NULL;
    for (uint64_t i = 0; i < t->buckets && b == NULL; ++i)
        for (int k = 0; k < FC_LIMIT_WAYS; ++k)
            if (t->bucket[i].entry[k].tag == key.tag && t->bucket[i].entry[k].prefix == key.prefix)
                b = &t->bucket[i];
    size_t held;
    fc_limits_used(t, &held);
    uint32_t conns = 0;
    for (int k = 0; b && k < FC_LIMIT_WAYS; ++k)
        if (b->entry[k].tag == key.tag)
            conns = b->entry[k].conns;
    CHECK(conns == WORKERS * ROUNDS / 2, "conns %u, wanted %d", conns, WORKERS * ROUNDS / 2);

    /* a holder killed inside the lock: the next one takes it over */
    pid_t dead = fork();
    if (dead == 0)
        _exit(0);
    waitpid(dead, NULL, 0);
    for (uint64_t i = 0; i < t->buckets; ++i)
        t->bucket[i].lock = (uint32_t)dead;
    uint64_t wait;
    fc_limit_rule_t rule = {.conn = 0};
    CHECK(fc_limit_request(t, key, 2, &rule, &wait) == FC_LIMIT_PASS, "lock of a dead process taken over");
    munmap(t, bytes);
}

int main(void)
{
    test_size();
    test_rate();
    test_conn();
    test_keys();
    test_bound();
    test_processes();
    printf("fc_limits: %d checks, %d failures\n", checks, failures);
    return failures != 0;
}
