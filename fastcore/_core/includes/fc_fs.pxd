# Declarations of src_c/fc_fs.h: opening files confined to a directory.
# Returns a descriptor the caller owns (and closes), or -1 with errno set.


cdef extern from "fc_fs.h" nogil:
    int fc_open_beneath(int root_fd, const char *rel, const char *root_real, int beneath)
    int fc_openat2_state()
    void fc_fs_force_fallback(int on)
