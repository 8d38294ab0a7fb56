/* fc_fs: opening files confined to a directory, the one system-call layer of
 * the static-file server.
 */
#ifndef FC_FS_H
#define FC_FS_H

#ifdef __cplusplus
extern "C" {
#endif

/* Opens `rel` (a relative path, NUL-terminated, already normalised: no ".."
 * segment, no leading '/') under the directory `root_fd`, read-only,
 * close-on-exec, non-blocking (a FIFO must not stall the worker) and
 * without acquiring a controlling terminal.
 *
 * beneath = 1: resolution may never leave root_fd, symbolic links included
 * (a link pointing outside fails with EXDEV), /proc-style magic links
 * included. openat2(2) RESOLVE_BENEATH does this in the kernel (Linux
 * 5.6+). Where it is missing (ENOSYS, or EPERM from a seccomp filter), and
 * where it refuses a path only because of an absolute symbolic link (EXDEV,
 * which it also gives for a link pointing inside the root), the path is
 * resolved with openat(2) O_PATH, which opens nothing, its real path (read
 * back from /proc/self/fd) must lie under the root's (`root_real`,
 * NUL-terminated, no trailing '/') and walking that real path down from
 * root_fd, no link followed, must reach the same inode (a magic link into
 * another mount namespace reads back as one of our paths), else EXDEV; only
 * then is that same file opened for reading: a link swapped in between
 * cannot fool the check and nothing outside the root is ever opened. (So a
 * link through /proc/self/root to a file the root holds does open: it is
 * that file.)
 * beneath = 0: links are followed wherever they lead (`..` cannot occur in
 * a normalised path, so only links can lead out).
 *
 * Returns the new descriptor, or -1 with errno set. */
int fc_open_beneath(int root_fd, const char *rel, const char *root_real, int beneath);

/* fstat of what fc_open_beneath would open, with the same confinement,
 * without opening it for reading. Returns 0, or -1 with errno set. */
struct stat;
int fc_stat_beneath(int root_fd, const char *rel, const char *root_real, int beneath, struct stat *st);

/* fstat(2), stat(2) and fstatat(2), with their contracts, made as system
 * calls. glibc 2.33 turned stat, fstat and fstatat (and their *64 forms)
 * into exported functions of symbol version GLIBC_2.33, where they had been
 * inline wrappers of __xstat and friends: a module calling them can only
 * load on glibc 2.33 or later, which makes the wheel manylinux_2_34. The
 * system call is the same on every kernel, and on x86-64 and arm64 the
 * kernel fills the C library's struct stat as it is; elsewhere these are
 * the C library's functions. */
int fc_fstat(int fd, struct stat *st);
int fc_stat(const char *path, struct stat *st);
int fc_fstatat(int dir_fd, const char *path, struct stat *st, int flags);

/* 1 once the kernel has shown it has openat2(2), 0 once it has shown it has
 * not, -1 before the first call. For tests and the startup log line. */
int fc_openat2_state(void);

/* Forces the fallback path (for tests): 1 pretends openat2 is missing. */
void fc_fs_force_fallback(int on);

#ifdef __cplusplus
}
#endif
#endif /* FC_FS_H */
