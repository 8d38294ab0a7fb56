/* fc_fs: see fc_fs.h. */
#define _GNU_SOURCE
#include "fc_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define OPEN_FLAGS (O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)

static int openat2_state = -1;
static int forced_fallback = 0;

int fc_openat2_state(void) { return openat2_state; }

void fc_fs_force_fallback(int on) { forced_fallback = on; }

/* The fallback's check: is the opened file's real path under root_real? */
static int under_root(int fd, const char *root_real)
{
    char proc[64];
    char real[4096];
    size_t root_len = strlen(root_real);
    ssize_t n;
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    n = readlink(proc, real, sizeof(real) - 1);
    if (n < 0)
        return 0;
    real[n] = '\0';
    if (root_len == 1 && root_real[0] == '/')
        return 1;
    if ((size_t)n < root_len || memcmp(real, root_real, root_len) != 0)
        return 0;
    return (size_t)n == root_len || real[root_len] == '/';
}

int fc_open_beneath(int root_fd, const char *rel, const char *root_real, int beneath)
{
    int fd;
    if (!beneath)
        return openat(root_fd, rel, OPEN_FLAGS);
#ifdef SYS_openat2
    if (openat2_state != 0 && !forced_fallback) {
        struct open_how how;
        memset(&how, 0, sizeof(how));
        how.flags = OPEN_FLAGS;
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
        fd = (int)syscall(SYS_openat2, root_fd, rel, &how, sizeof(how));
        if (fd >= 0 || (errno != ENOSYS && errno != EXDEV)) {
            openat2_state = 1;
            return fd;
        }
        if (errno == ENOSYS)
            openat2_state = 0;
        /* EXDEV: resolution left the root, or met an absolute symbolic link,
         * which RESOLVE_BENEATH refuses even when it points inside the root;
         * the real-path check below tells the two apart */
    }
#endif
    fd = openat(root_fd, rel, OPEN_FLAGS);
    if (fd < 0)
        return -1;
    if (!under_root(fd, root_real)) {
        close(fd);
        errno = EXDEV;
        return -1;
    }
    return fd;
}
