/* Shared by the C tests: counted checks and guarded buffers.
 * A guarded buffer's `len` bytes end right before a PROT_NONE page, so a
 * read or write one byte past the end crashes instead of passing unseen. */
#ifndef FC_TEST_H
#define FC_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int failures = 0;
static int checks = 0;

/* counts a check; a failed one is reported with its place and message */
#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        ++checks;                                                          \
        if (!(cond)) {                                                     \
            ++failures;                                                    \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);           \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
        }                                                                  \
    } while (0)

typedef struct {
    char *map;
    size_t map_len;
    char *data;
} guarded_t;

/* `len` writable bytes ending right before a PROT_NONE page */
static guarded_t guarded_alloc(size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t body = (len + page - 1) / page * page;
    if (body == 0)
        body = page;
    guarded_t g;
    g.map_len = body + page;
    g.map = mmap(NULL, g.map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g.map == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    if (mprotect(g.map + body, page, PROT_NONE) != 0) {
        perror("mprotect");
        exit(2);
    }
    g.data = g.map + body - len;
    return g;
}

static guarded_t guarded_copy(const char *src, size_t len)
{
    guarded_t g = guarded_alloc(len);
    if (len)
        memcpy(g.data, src, len);
    return g;
}

static void guarded_free(guarded_t g) { munmap(g.map, g.map_len); }

/* "DIR/NAME" in one of four rotating static buffers (a call may take a few) */
static inline const char *path_in(const char *dir, const char *name)
{
    static char paths[4][256];
    static int next;
    char *path = paths[next++ % 4];
    snprintf(path, 256, "%s/%s", dir, name);
    return path;
}

#endif /* FC_TEST_H */
