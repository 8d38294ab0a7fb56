# Interface of fastcore._core.loop: one epoll instance on one thread.
#
# Handles are the loop's unit of registration: a Handle wraps one file
# descriptor; the loop calls its _on_events() with the epoll event mask.
# The loop keeps a strong reference to every registered Handle (so the
# pointer stored in epoll_event.data stays valid) and defers dropping it to
# the end of the batch in which it was unregistered.
from libc.stdint cimport uint32_t
from fastcore._core.includes.syscalls cimport epoll_event
from fastcore._core.stats cimport WorkerStats


cdef class Handle:
    cdef int fd
    cdef uint32_t interest       # events the loop watches for, 0 if none
    cdef bint registered
    cdef bint deferred           # in the loop's list for _on_deferred this batch
    cdef Loop loop

    cdef int _on_events(self, uint32_t events) except -1
    cdef int _on_deferred(self) except -1
    cdef int set_interest(self, uint32_t events) except -1
    cdef int unregister(self) except -1


cdef class DeadlineQueue:
    """Handles waiting for one kind of timeout, in deadline order.

    Every entry has the same duration, so appending at the tail keeps the
    queue sorted: arm and cancel are O(1), expiry pops from the head."""
    cdef readonly double duration
    cdef TimedHandle head
    cdef TimedHandle tail
    cdef Py_ssize_t count
    cdef double *earliest        # the loop's earliest_deadline, lowered by push_back

    cdef void arm(self, TimedHandle h, double now) noexcept
    cdef void push_back(self, TimedHandle h) noexcept
    cdef void unlink(self, TimedHandle h) noexcept


cdef class TimedHandle(Handle):
    """A Handle that can sit in one DeadlineQueue at a time."""
    cdef double deadline
    cdef DeadlineQueue queue
    cdef TimedHandle prev_timed
    cdef TimedHandle next_timed

    cdef int _on_timeout(self) except -1
    cdef void disarm(self) noexcept


cdef class Loop:
    cdef int epfd
    cdef int wake_fd
    cdef bint running
    cdef readonly double now
    cdef dict handles            # fd -> Handle (strong references)
    cdef list graveyard          # unregistered this batch; released after it
    cdef list timers             # heap of Timer for call_later
    cdef list ready              # callbacks for call_soon
    cdef object threadsafe       # deque of callbacks from other threads
    cdef list queues             # DeadlineQueues to expire
    cdef double earliest_deadline  # at or before every queue head's deadline (see _expire)
    cdef list deferred_handles   # handles whose _on_deferred runs after this batch
    cdef epoll_event *events
    cdef int max_events
    cdef tuple signal_pipe        # (handle, read fd, write fd) once watch_signals() ran
    cdef WorkerStats stats        # heartbeat written every iteration, when set

    cdef double clock(self) noexcept
    cdef int register(self, Handle h, uint32_t events) except -1
    cdef int modify(self, Handle h, uint32_t events) except -1
    cdef int drop(self, Handle h) except -1
    cdef int requeue(self, Handle h) except -1
    cdef DeadlineQueue deadline_queue(self, double duration)
    cdef int defer(self, Handle h) except -1
    cdef int _run_deferred(self) except -1
    cdef int run_deferred_except(self, Handle keep) except -1
    cdef int _run_once(self) except -1
    cdef int _run_batch(self, int timeout) except -1
    cdef int _expire(self) except -1
    cdef int _run_timers(self) except -1
    cdef int _next_timeout_ms(self)
    # poll() and next_timeout(), for an outer loop watching this one's epoll
    # descriptor (fastcore._core.asgi.CoreDriver calls them from C)
    cdef bint _poll(self) except -1
    cdef double _next_timeout(self) except? -1.0
