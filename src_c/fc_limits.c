/* fc_limits.c: see fc_limits.h. */
#define _POSIX_C_SOURCE 200809L
#include "fc_limits.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

_Static_assert(sizeof(fc_limit_entry_t) == 32, "an entry is 32 bytes");
_Static_assert(sizeof(fc_limit_bucket_t) == 256, "a bucket is four cache lines");

/* spins before a waiter asks whether the holder still lives */
#define FC_LOCK_SPINS 4096
/* the longest gap the leaky bucket drains over (11 days): keeps rate * ms in 64 bits */
#define FC_MAX_GAP_MS 1000000000ull

size_t fc_limits_size(size_t entries)
{
    size_t buckets = 1;
    while (buckets * FC_LIMIT_WAYS < entries)
        buckets <<= 1;
    return sizeof(fc_limits_t) + buckets * sizeof(fc_limit_bucket_t);
}

void fc_limits_init(fc_limits_t *t, size_t entries, uint64_t seed)
{
    size_t buckets = 1;
    while (buckets * FC_LIMIT_WAYS < entries)
        buckets <<= 1;
    memset(t, 0, sizeof(fc_limits_t) + buckets * sizeof(fc_limit_bucket_t));
    t->buckets = buckets;
    t->seed = seed;
    t->magic = FC_LIMITS_MAGIC;
}

fc_limit_key_t fc_limit_key(const uint8_t addr[16], uint32_t zone)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    fc_limit_key_t key;
    int v4 = memcmp(addr, mapped, 12) == 0;
    memcpy(&key.prefix, addr + (v4 ? 8 : 0), 8);
    key.tag = zone << 1 | (uint32_t)v4;
    return key;
}

/* splitmix64's finaliser over the key and the seed */
static uint64_t hash_key(const fc_limits_t *t, fc_limit_key_t key)
{
    uint64_t x = key.prefix ^ t->seed ^ ((uint64_t)key.tag * 0x9e3779b97f4a7c15ull);
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void lock_bucket(fc_limit_bucket_t *b)
{
    uint32_t me = (uint32_t)getpid();
    unsigned spins = 0;
    for (;;) {
        uint32_t holder = 0;
        if (__atomic_compare_exchange_n(&b->lock, &holder, me, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return;
        if (++spins < FC_LOCK_SPINS) {
            cpu_relax();
            continue;
        }
        spins = 0;
        /* long held: a holder killed inside never lets go; take it over */
        if (holder != 0 && kill((pid_t)holder, 0) != 0 && errno == ESRCH &&
            __atomic_compare_exchange_n(&b->lock, &holder, me, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return;
        sched_yield();
    }
}

static void unlock_bucket(fc_limit_bucket_t *b) { __atomic_store_n(&b->lock, 0, __ATOMIC_RELEASE); }

static fc_limit_bucket_t *bucket_of(fc_limits_t *t, fc_limit_key_t key)
{
    return &t->bucket[hash_key(t, key) & (t->buckets - 1)];
}

static fc_limit_entry_t *find(fc_limit_bucket_t *b, fc_limit_key_t key)
{
    for (int i = 0; i < FC_LIMIT_WAYS; ++i) {
        fc_limit_entry_t *e = &b->entry[i];
        if (e->tag == key.tag && e->prefix == key.prefix)
            return e;
    }
    return NULL;
}

/* A free entry for key, or the one least recently seen, preferring those
 * that hold no connection. */
static fc_limit_entry_t *take(fc_limits_t *t, fc_limit_bucket_t *b, fc_limit_key_t key, uint64_t now_ms)
{
    fc_limit_entry_t *idle = NULL, *any = NULL;
    for (int i = 0; i < FC_LIMIT_WAYS; ++i) {
        fc_limit_entry_t *e = &b->entry[i];
        if (e->tag == 0) {
            idle = e;
            break;
        }
        if (e->conns == 0 && (idle == NULL || e->seen < idle->seen))
            idle = e;
        if (any == NULL || e->seen < any->seen)
            any = e;
    }
    fc_limit_entry_t *e = idle != NULL ? idle : any;
    if (e->tag != 0)
        __atomic_fetch_add(&t->evictions, 1, __ATOMIC_RELAXED);
    e->prefix = key.prefix;
    e->tag = key.tag;
    e->conns = 0;
    e->excess = 0;
    e->last_ms = now_ms;
    return e;
}

fc_limit_result_t fc_limit_request(fc_limits_t *t, fc_limit_key_t key, uint64_t now_ms, const fc_limit_rule_t *rule,
                                   uint64_t *wait_ms)
{
    fc_limit_result_t result = FC_LIMIT_PASS;
    fc_limit_bucket_t *b = bucket_of(t, key);
    *wait_ms = 0;
    lock_bucket(b);
    fc_limit_entry_t *e = find(b, key);
    int fresh = e == NULL;
    if (fresh)
        e = take(t, b, key, now_ms);
    e->seen = (uint32_t)(now_ms >> 10);
    if (rule->conn && e->conns >= rule->conn) {
        result = FC_LIMIT_CONN;
    } else if (rule->rate) {
        int64_t excess = 0;
        if (!fresh) {
            uint64_t gap = now_ms > e->last_ms ? now_ms - e->last_ms : 0;
            if (gap > FC_MAX_GAP_MS)
                gap = FC_MAX_GAP_MS;
            excess = e->excess - (int64_t)(rule->rate * gap / 1000) + 1000;
            if (excess < 0)
                excess = 0;
        }
        if ((uint64_t)excess > rule->burst) {
            result = FC_LIMIT_RATE;
            /* until enough has drained for one more request */
            *wait_ms = ((uint64_t)excess - rule->burst) * 1000 / rule->rate + 1;
        } else {
            e->excess = (int32_t)excess;
            e->last_ms = now_ms;
            if (excess > 0) {
                result = FC_LIMIT_DELAY;
                *wait_ms = (uint64_t)excess * 1000 / rule->rate;
            }
        }
    }
    if (rule->conn && (result <= FC_LIMIT_DELAY || rule->dry_run))
        e->conns += 1;
    unlock_bucket(b);
    return result;
}

void fc_limit_release(fc_limits_t *t, fc_limit_key_t key)
{
    fc_limit_bucket_t *b = bucket_of(t, key);
    lock_bucket(b);
    fc_limit_entry_t *e = find(b, key);
    if (e != NULL && e->conns > 0)
        e->conns -= 1;
    unlock_bucket(b);
}

size_t fc_limits_used(fc_limits_t *t, size_t *with_conns)
{
    size_t used = 0, held = 0;
    for (uint64_t i = 0; i < t->buckets; ++i) {
        for (int k = 0; k < FC_LIMIT_WAYS; ++k) {
            const fc_limit_entry_t *e = &t->bucket[i].entry[k];
            used += e->tag != 0;
            held += e->tag != 0 && e->conns > 0;
        }
    }
    if (with_conns != NULL)
        *with_conns = held;
    return used;
}
