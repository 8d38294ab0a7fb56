# System calls and structures of Linux used by the loop and connections,
# declared from their C headers (man 2 epoll_wait, accept4, writev, sendfile,
# eventfd). No Python objects here. All are called without the GIL held
# only where noted by the caller; errors come back as -1 with errno set.
from libc.stdint cimport uint32_t, uint64_t, int64_t

cdef extern from "<sys/epoll.h>" nogil:
    ctypedef union epoll_data_t:
        void *ptr
        int fd
        uint32_t u32
        uint64_t u64

    struct epoll_event:
        uint32_t events
        epoll_data_t data

    enum:
        EPOLLIN
        EPOLLOUT
        EPOLLERR
        EPOLLHUP
        EPOLLRDHUP
        EPOLLEXCLUSIVE
        EPOLL_CTL_ADD
        EPOLL_CTL_MOD
        EPOLL_CTL_DEL
        EPOLL_CLOEXEC

    int epoll_create1(int flags)
    int epoll_ctl(int epfd, int op, int fd, epoll_event *event)
    int epoll_wait(int epfd, epoll_event *events, int maxevents, int timeout)

cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    ctypedef unsigned short sa_family_t

    struct sockaddr:
        sa_family_t sa_family

    struct sockaddr_storage:
        sa_family_t ss_family

    enum:
        AF_INET
        AF_INET6
        AF_UNIX
        SOCK_NONBLOCK
        SOCK_CLOEXEC
        SOL_SOCKET
        SO_ERROR
        MSG_NOSIGNAL
        MSG_MORE
        MSG_PEEK
        MSG_DONTWAIT
        SHUT_WR

    int accept4(int sockfd, sockaddr *addr, socklen_t *addrlen, int flags)
    int setsockopt(int sockfd, int level, int optname, const void *optval, socklen_t optlen)
    int getsockopt(int sockfd, int level, int optname, void *optval, socklen_t *optlen)
    ssize_t send(int sockfd, const void *buf, size_t len, int flags)
    ssize_t recv(int sockfd, void *buf, size_t len, int flags)
    int shutdown(int sockfd, int how)

cdef extern from "<netinet/in.h>" nogil:
    enum:
        IPPROTO_TCP
    struct in_addr:
        uint32_t s_addr
    struct in6_addr:
        unsigned char s6_addr[16]
    struct sockaddr_in:
        sa_family_t sin_family
        unsigned short sin_port
        in_addr sin_addr
    struct sockaddr_in6:
        sa_family_t sin6_family
        unsigned short sin6_port
        in6_addr sin6_addr
    unsigned short ntohs(unsigned short)

cdef extern from "<arpa/inet.h>" nogil:
    const char *inet_ntop(int af, const void *src, char *dst, socklen_t size)
    enum:
        INET6_ADDRSTRLEN

cdef extern from "<netinet/tcp.h>" nogil:
    enum:
        TCP_NODELAY

cdef extern from "<sys/uio.h>" nogil:
    struct iovec:
        void *iov_base
        size_t iov_len
    ssize_t writev(int fd, const iovec *iov, int iovcnt)

cdef extern from "<sys/socket.h>" nogil:
    struct msghdr:
        void *msg_name
        socklen_t msg_namelen
        iovec *msg_iov
        size_t msg_iovlen
        void *msg_control
        size_t msg_controllen
        int msg_flags
    ssize_t sendmsg(int sockfd, const msghdr *msg, int flags)

cdef extern from "<sys/sendfile.h>" nogil:
    ssize_t sendfile(int out_fd, int in_fd, int64_t *offset, size_t count)

cdef extern from "<sys/eventfd.h>" nogil:
    enum:
        EFD_NONBLOCK
        EFD_CLOEXEC
    int eventfd(unsigned int initval, int flags)

cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    struct timespec:
        time_t tv_sec
        long tv_nsec
    enum:
        CLOCK_MONOTONIC
        CLOCK_REALTIME
    int clock_gettime(int clk_id, timespec *tp)

cdef extern from "<errno.h>" nogil:
    int errno
    enum:
        EAGAIN
        EWOULDBLOCK
        EINTR
        ECONNABORTED
        EMFILE
        ENFILE
        ENOBUFS
        ENOMEM
        ENOSPC
        EDQUOT
        EPIPE
        ECONNRESET
        EPROTO
        EPERM
        ENETDOWN
        EHOSTUNREACH
        ENOPROTOOPT
        EHOSTDOWN
        ENONET
        ENETUNREACH
        EOPNOTSUPP
        EINPROGRESS
        ENOENT
        ENOTDIR
        EXDEV
        ELOOP
        EACCES
        EISDIR
        ENAMETOOLONG

cdef extern from "<sys/stat.h>" nogil:
    ctypedef unsigned long dev_t
    ctypedef unsigned long ino_t
    ctypedef unsigned int mode_t
    ctypedef struct struct_stat "struct stat":
        dev_t st_dev
        ino_t st_ino
        mode_t st_mode
        int64_t st_size
        timespec st_mtim
    int fstat(int fd, struct_stat *buf)
    int stat(const char *path, struct_stat *buf)
    int fstatat(int dirfd, const char *path, struct_stat *buf, int flags)
    bint S_ISREG(mode_t mode)
    bint S_ISDIR(mode_t mode)

cdef extern from "<fcntl.h>" nogil:
    enum:
        O_RDONLY
        O_DIRECTORY
        O_CLOEXEC
        O_PATH
    int open(const char *path, int flags)

cdef extern from "<limits.h>" nogil:
    enum:
        PATH_MAX

cdef extern from "<stdlib.h>" nogil:
    char *realpath(const char *path, char *resolved)

cdef extern from "<unistd.h>" nogil:
    ssize_t pread(int fd, void *buf, size_t count, int64_t offset)
