/* fc_fs: see fc_fs.h. */
#define _GNU_SOURCE
#include "fc_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define OPEN_FLAGS (O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
#define EAGAIN_RETRIES 4

static int openat2_state = -1;
static int forced_fallback = 0;

int fc_openat2_state(void) { return openat2_state; }

#if defined(__x86_64__) || defined(__aarch64__)
int fc_fstat(int fd, struct stat *st) { return (int)syscall(SYS_fstat, fd, st); }

int fc_fstatat(int dir_fd, const char *path, struct stat *st, int flags)
{
    return (int)syscall(SYS_newfstatat, dir_fd, path, st, flags);
}
#else
int fc_fstat(int fd, struct stat *st) { return fstat(fd, st); }

int fc_fstatat(int dir_fd, const char *path, struct stat *st, int flags) { return fstatat(dir_fd, path, st, flags); }
#endif

int fc_stat(const char *path, struct stat *st) { return fc_fstatat(AT_FDCWD, path, st, 0); }

void fc_fs_force_fallback(int on) { forced_fallback = on; }

/* The fallback's first check: the real path of fd, read back from
 * /proc/self/fd into real[cap], is root_real or lies under it. *rest is set
 * to what follows root_real and its '/' ("" for the root itself). */
static int under_root(int fd, const char *root_real, char *real, size_t cap, const char **rest)
{
    char proc[64];
    size_t root_len = strlen(root_real);
    ssize_t n;
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    n = readlink(proc, real, cap - 1);
    if (n < 0 || (size_t)n >= cap - 1)
        return 0;
    real[n] = '\0';
    if (root_len == 1 && root_real[0] == '/') {
        *rest = real + 1;
        return 1;
    }
    if ((size_t)n < root_len || memcmp(real, root_real, root_len) != 0)
        return 0;
    if ((size_t)n == root_len) {
        *rest = real + n;
        return 1;
    }
    *rest = real + root_len + 1;
    return real[root_len] == '/';
}

/* The fallback's second check: walking `rest` down from root_fd one name
 * at a time, no link followed, reaches the very file path_fd holds (same
 * device and inode). The real path alone is not proof: a /proc magic link
 * (/proc/PID/root/...) can land in another mount namespace, whose paths
 * read back as if they were ours. 1 yes, 0 no, -1 with errno when the
 * worker is short of descriptors or memory (which must not read as "no":
 * the caller answers 503 to that, 404 to a refusal). */
static int same_beneath(int root_fd, int path_fd, const char *rest)
{
    struct stat want, got;
    char name[NAME_MAX + 1];
    int dir = root_fd, next, same;
    if (fc_fstat(path_fd, &want) != 0)
        return 0;
    while (*rest) {
        const char *slash = strchr(rest, '/');
        size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
        if (n == 0 || n > NAME_MAX) {
            next = -1;
            errno = ENOENT;
        } else {
            memcpy(name, rest, n);
            name[n] = '\0';
            next = openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        }
        if (next < 0) {
            int err = errno;
            if (dir != root_fd)
                close(dir);
            errno = err;
            return (err == EMFILE || err == ENFILE || err == ENOMEM) ? -1 : 0;
        }
        if (dir != root_fd)
            close(dir);
        dir = next;
        rest += n + (slash != NULL);
    }
    same = fc_fstat(dir, &got) == 0 && got.st_dev == want.st_dev && got.st_ino == want.st_ino;
    if (dir != root_fd)
        close(dir);
    return same;
}

/* openat2 with RESOLVE_BENEATH; -1 with errno ENOSYS when the kernel (or a
 * seccomp filter, which answers EPERM) does not let us use it. EAGAIN (a
 * rename raced with resolving a link) is retried a few times. */
static int open_beneath_kernel(int root_fd, const char *rel, int flags)
{
#ifdef SYS_openat2
    struct open_how how;
    int fd = -1, tries;
    if (openat2_state == 0 || forced_fallback) {
        errno = ENOSYS;
        return -1;
    }
    memset(&how, 0, sizeof(how));
    how.flags = (unsigned long long)flags;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    for (tries = 0; tries < EAGAIN_RETRIES; ++tries) {
        fd = (int)syscall(SYS_openat2, root_fd, rel, &how, sizeof(how));
        if (fd >= 0 || errno != EAGAIN)
            break;
    }
    if (fd < 0 && (errno == ENOSYS || errno == EPERM)) {
        openat2_state = 0;
        errno = ENOSYS;
        return -1;
    }
    openat2_state = 1;
    return fd;
#else
    (void)root_fd; (void)rel; (void)flags;
    errno = ENOSYS;
    return -1;
#endif
}

/* Without the kernel's help: resolve with O_PATH (which opens nothing: no
 * FIFO, device or automount is touched), check where it landed, and only
 * then open that very file for reading through /proc/self/fd. */
static int open_checked(int root_fd, const char *rel, const char *root_real, int want_path)
{
    char proc[64];
    char real[PATH_MAX];
    const char *rest;
    struct stat st;
    int path_fd, fd, same;
    path_fd = openat(root_fd, rel, O_PATH | O_CLOEXEC);
    if (path_fd < 0)
        return -1;
    same = under_root(path_fd, root_real, real, sizeof(real), &rest) ? same_beneath(root_fd, path_fd, rest) : 0;
    if (same != 1) {
        int err = same < 0 ? errno : EXDEV;
        close(path_fd);
        errno = err;
        return -1;
    }
    if (want_path)
        return path_fd;
    if (fc_fstat(path_fd, &st) != 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) {
        /* a FIFO or a device is refused before it is opened */
        close(path_fd);
        errno = EACCES;
        return -1;
    }
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", path_fd);
    fd = open(proc, OPEN_FLAGS);
    close(path_fd);
    return fd;
}

int fc_open_beneath(int root_fd, const char *rel, const char *root_real, int beneath)
{
    int fd;
    if (!beneath)
        return openat(root_fd, rel, OPEN_FLAGS);
    fd = open_beneath_kernel(root_fd, rel, OPEN_FLAGS);
    if (fd >= 0 || (errno != ENOSYS && errno != EXDEV))
        return fd;
    /* ENOSYS: no openat2 here. EXDEV: resolution left the root, or met an
     * absolute symbolic link, which RESOLVE_BENEATH refuses even when it
     * points inside the root; the real-path check tells the two apart. */
    return open_checked(root_fd, rel, root_real, 0);
}

int fc_stat_beneath(int root_fd, const char *rel, const char *root_real, int beneath, struct stat *st)
{
    int fd, rc;
    if (!beneath)
        return fc_fstatat(root_fd, rel, st, 0);
    fd = open_beneath_kernel(root_fd, rel, O_PATH | O_CLOEXEC);
    if (fd < 0 && (errno == ENOSYS || errno == EXDEV))
        fd = open_checked(root_fd, rel, root_real, 1);
    if (fd < 0)
        return -1;
    rc = fc_fstat(fd, st);
    close(fd);
    return rc;
}
