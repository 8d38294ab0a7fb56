# Declarations of src_c/fc_fs.h: opening files confined to a directory.
# fc_open_beneath returns a descriptor the caller owns (and closes), or -1
# with errno set; fc_stat_beneath fills the caller's struct stat.
from fastcore._core.includes.syscalls cimport struct_stat


cdef extern from "fc_fs.h" nogil:
    int fc_open_beneath(int root_fd, const char *rel, const char *root_real, int beneath)
    int fc_stat_beneath(int root_fd, const char *rel, const char *root_real, int beneath, struct_stat *st)
    int fc_openat2_state()
    # stat, fstat and fstatat as system calls (no GLIBC_2.33 symbol): 0, or -1 with errno set
    int fc_fstat(int fd, struct_stat *st)
    int fc_stat(const char *path, struct_stat *st)
    void fc_fs_force_fallback(int on)
