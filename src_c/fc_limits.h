/* fc_limits: the per-client limits table, shared by every worker process.
 *
 * With SO_REUSEPORT one client's connections land on different workers, so
 * a table per worker would multiply every limit by the worker count. The
 * table lives in one MAP_SHARED|MAP_ANONYMOUS mapping that the arbiter
 * makes before it forks, sized once: a fixed number of entries however many
 * distinct clients come (fc_limits_size()).
 *
 * Layout: a header, then a power of two of 256-byte buckets, each a lock
 * word and FC_LIMIT_WAYS entries of 32 bytes (36.6 bytes a key in all). A
 * key is the client's address (IPv4 whole, IPv6 by its /64: one host owns
 * a /64) plus the zone (the location's number), hashed with a seed chosen
 * at start (addresses an attacker picks cannot aim at one bucket).
 *
 * Full bucket: the new key takes the entry least recently seen, preferring
 * one that holds no connection; an entry evicted with connections counted
 * fails open (its releases find nothing and do nothing: counts never wrap).
 *
 * Concurrency: each bucket has a spinlock, a word holding the holder's pid,
 * taken for the few dozen instructions of a lookup. A worker killed while
 * holding it (SIGKILL from the arbiter) would block the bucket forever: a
 * waiter that has spun long checks that the holder still lives and takes
 * the lock over if not.
 *
 * Request rate: nginx's limit_req leaky bucket. An entry keeps `excess`,
 * requests above the rate in thousandths, and the time it was last let
 * through; a request adds 1000 after draining rate * elapsed. Above the
 * burst the request is refused and the entry is left as it was.
 *
 * Every lookup, refused or not, marks the key seen: a client refused
 * again and again stays in the table (evicting it would forget its excess).
 *
 * Times are milliseconds of CLOCK_MONOTONIC. */
#ifndef FC_LIMITS_H
#define FC_LIMITS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FC_LIMIT_WAYS 7
#define FC_LIMITS_MAGIC 0x666331696d697473ull /* "fc1imits" */

typedef struct {
    uint64_t prefix;     /* IPv4: the mapped address's last 8 bytes; IPv6: the /64 */
    uint32_t tag;        /* zone << 1 | 1 for IPv4 (zones start at 1); 0: the entry is free */
    uint32_t conns;      /* requests of this key in progress (limit_conn) */
    uint64_t last_ms;    /* when a request was last let through (the leaky bucket's clock) */
    uint32_t seen;       /* when the key was last asked about, in 1.024 s units: eviction order */
    int32_t excess;      /* requests above the rate, thousandths (<= the burst) */
} fc_limit_entry_t;

typedef struct {
    uint32_t lock;       /* pid of the holder, 0: free */
    uint32_t pad[7];
    fc_limit_entry_t entry[FC_LIMIT_WAYS];
} fc_limit_bucket_t;

typedef struct {
    uint64_t magic;
    uint64_t buckets;    /* a power of two */
    uint64_t seed;
    uint64_t evictions;  /* keys pushed out by others (atomic) */
    uint64_t pad[4];
    fc_limit_bucket_t bucket[];
} fc_limits_t;

typedef struct {
    uint64_t prefix;
    uint32_t tag;
} fc_limit_key_t;

typedef struct {
    uint64_t rate;       /* requests a second, in thousandths; 0: no rate limit */
    uint64_t burst;      /* requests above the rate let through, in thousandths (<= FC_LIMIT_MAX_BURST) */
    uint32_t conn;       /* requests in progress at once; 0: no limit */
    int dry_run;         /* count and report, refuse nothing */
} fc_limit_rule_t;

typedef enum {
    FC_LIMIT_PASS = 0,   /* let through now */
    FC_LIMIT_DELAY,      /* let through after *wait_ms (within the burst, not nodelay) */
    FC_LIMIT_RATE,       /* over rate + burst: 429, Retry-After *wait_ms */
    FC_LIMIT_CONN        /* over the requests in progress: 503 */
} fc_limit_result_t;

/* Bytes of a table holding at least `entries` keys (rounded up to a power
 * of two of buckets). */
size_t fc_limits_size(size_t entries);

/* Sets up a table in `mem` (zeroed shared memory of fc_limits_size(entries)
 * bytes). */
void fc_limits_init(fc_limits_t *t, size_t entries, uint64_t seed);

/* The largest burst an entry holds, in thousandths. */
#define FC_LIMIT_MAX_BURST 2000000000ull

/* Keys hold at most FC_LIMIT_WAYS * buckets entries. */
static inline size_t fc_limits_capacity(const fc_limits_t *t) { return (size_t)t->buckets * FC_LIMIT_WAYS; }

/* The key of a client address (16 bytes, IPv4 mapped) in a zone. */
fc_limit_key_t fc_limit_key(const uint8_t addr[16], uint32_t zone);

/* One request of `key` under `rule`, at now_ms. On FC_LIMIT_DELAY and
 * FC_LIMIT_RATE *wait_ms says how long (the delay, or when a request
 * would pass again). The request is counted against rule->conn (and must
 * be released with fc_limit_release when it ends) when the rule has a conn
 * limit and the result is PASS or DELAY, or the rule is a dry run: the
 * answer is then what would happen, and the request goes on. */
fc_limit_result_t fc_limit_request(fc_limits_t *t, fc_limit_key_t key, uint64_t now_ms, const fc_limit_rule_t *rule,
                                   uint64_t *wait_ms);

/* A request counted by fc_limit_request has ended. */
void fc_limit_release(fc_limits_t *t, fc_limit_key_t key);

/* Entries in use (a scan, for tests and /status), and of those, the ones
 * holding connections. */
size_t fc_limits_used(fc_limits_t *t, size_t *with_conns);

#ifdef __cplusplus
}
#endif

#endif /* FC_LIMITS_H */
