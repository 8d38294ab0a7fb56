# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The event loop: one epoll instance, one thread.

Theory of operation
-------------------
Each iteration waits in epoll_wait (without the GIL, so application threads
run meanwhile) for at most the time to the nearest deadline, then:

1. dispatches each ready Handle's _on_events(mask): a C-level virtual call,
   no Python frame, for connections and listeners;
2. runs call_soon callbacks, then callbacks handed over by other threads
   (call_soon_threadsafe wakes the loop through an eventfd);
3. runs deferred work (Handle._on_deferred): connections flush the responses
   they completed in this batch all together, so a client is woken once per
   batch rather than once per response;
4. expires DeadlineQueues (connection timeouts) from their heads. The loop
   keeps `earliest_deadline`, never later than any queue's head: arming
   lowers it (push_back), and a head only ever moves later (entries leave,
   later ones follow), so while `now` is before it no queue has anything
   to expire and none is looked at. Past it, every queue is expired and the
   bound is made exact again. epoll_wait sleeps until it at most (a stale
   bound wakes the loop early once, to no harm);
5. runs due call_later timers (a heap);
6. releases Handles unregistered during this batch.

Invariants:
- a registered Handle is in `handles`, so the pointer epoll hands back is
  alive; one unregistered mid-batch stays alive in `graveyard` until the
  batch ends, and a closed Handle ignores late events (fd == -1).
- `now` is read once per iteration; deadlines compare against it.
- an exception escaping a handler is logged and the loop goes on: one bad
  connection never takes the worker down.

The loop knows nothing about HTTP. Python code uses add_reader/add_writer,
call_soon, call_later and call_soon_threadsafe; Cython handlers (listeners,
server connections, and later outbound proxy connections) subclass Handle.
"""
import collections
import heapq
import logging
import os
import signal

from cpython.exc cimport PyErr_CheckSignals
from libc.stdint cimport uint32_t, uint64_t
from libc.math cimport INFINITY
from libc.stdlib cimport free, malloc
from posix.unistd cimport close, read, write

from fastcore._core.includes.syscalls cimport *
from fastcore._core.stats cimport WorkerStats

cdef object error_log = logging.getLogger("fastcore.error")


cdef class Handle:
    """One file descriptor watched by the loop.

    Lifecycle: created with fd and loop; set_interest() registers it (or
    changes what it waits for); unregister() removes it from epoll (the fd
    is the owner's to close). Subclasses implement _on_events()."""

    cdef int _on_events(self, uint32_t events) except -1:
        raise NotImplementedError

    cdef int _on_deferred(self) except -1:
        return 0

    cdef int set_interest(self, uint32_t events) except -1:
        if self.registered:
            if events != self.interest:
                self.loop.modify(self, events)
        else:
            self.loop.register(self, events)
        return 0

    cdef int unregister(self) except -1:
        if self.registered:
            self.loop.drop(self)
        return 0


cdef class TimedHandle(Handle):
    cdef int _on_timeout(self) except -1:
        raise NotImplementedError

    cdef void disarm(self) noexcept:
        if self.queue is not None:
            self.queue.unlink(self)


cdef class DeadlineQueue:
    def __cinit__(self, double duration):
        self.duration = duration

    cdef void arm(self, TimedHandle h, double now) noexcept:
        """(Re)starts h's timeout in this queue from `now`."""
        if h.queue is not None:
            h.queue.unlink(h)
        h.deadline = now + self.duration
        self.push_back(h)

    cdef void push_back(self, TimedHandle h) noexcept:
        h.queue = self
        if h.deadline < self.earliest[0]:
            self.earliest[0] = h.deadline
        h.prev_timed = self.tail
        h.next_timed = None
        if self.tail is None:
            self.head = h
        else:
            self.tail.next_timed = h
        self.tail = h
        self.count += 1

    cdef void unlink(self, TimedHandle h) noexcept:
        if h.prev_timed is None:
            self.head = h.next_timed
        else:
            h.prev_timed.next_timed = h.next_timed
        if h.next_timed is None:
            self.tail = h.prev_timed
        else:
            h.next_timed.prev_timed = h.prev_timed
        h.prev_timed = None
        h.next_timed = None
        h.queue = None
        self.count -= 1

    def __len__(self):
        return self.count


cdef class Watcher(Handle):
    """Python callbacks for a file descriptor (add_reader / add_writer)."""
    cdef object on_read
    cdef tuple read_args
    cdef object on_write
    cdef tuple write_args

    cdef int _on_events(self, uint32_t events) except -1:
        if events & (EPOLLIN | EPOLLERR | EPOLLHUP) and self.on_read is not None:
            self.on_read(*self.read_args)
        if events & (EPOLLOUT | EPOLLERR | EPOLLHUP) and self.on_write is not None and self.registered:
            self.on_write(*self.write_args)
        return 0

    cdef uint32_t wanted(self) noexcept:
        cdef uint32_t events = 0
        if self.on_read is not None:
            events |= EPOLLIN
        if self.on_write is not None:
            events |= EPOLLOUT
        return events


cdef class Waker(Handle):
    """The eventfd that call_soon_threadsafe writes to wake the loop."""

    cdef int _on_events(self, uint32_t events) except -1:
        cdef uint64_t value
        read(self.fd, &value, sizeof(value))
        return 0


cdef class SignalPipe(Handle):
    """The read end of the pipe given to signal.set_wakeup_fd: a signal
    wakes the loop even where epoll_wait is restarted instead of failing
    with EINTR (as under valgrind); the handlers run in _run_once.

    A Python handler runs wherever the interpreter checks for signals, which
    includes between two bytecodes of an application the loop is running:
    handlers only record the signal, and `on_signals` (given to
    watch_signals) acts on what they recorded, from here, between events."""
    cdef object on_signals

    cdef int _on_events(self, uint32_t events) except -1:
        cdef char sink[64]
        while read(self.fd, sink, sizeof(sink)) > 0:
            pass
        # a signal that arrived after this iteration's PyErr_CheckSignals has
        # had its wake-up byte drained just now: run its handler here, or it
        # would wait for the next unrelated wake-up
        PyErr_CheckSignals()
        # every signal whose byte was drained has had its handler run by now
        # (CPython marks a signal pending before it writes the byte)
        if self.on_signals is not None:
            self.on_signals()
        return 0


cdef class Timer:
    """A call_later callback; cancel() keeps it from running."""
    cdef readonly double when
    cdef readonly object callback
    cdef tuple args
    cdef readonly bint cancelled
    cdef unsigned long long seq

    def cancel(self):
        self.cancelled = True

    def __lt__(self, Timer other):
        return (self.when, self.seq) < (other.when, other.seq)


cdef unsigned long long timer_seq = 0


cdef class Loop:
    """The worker's event loop. Not thread-safe, except call_soon_threadsafe."""

    def __cinit__(self, int max_events=512):
        self.epfd = epoll_create1(EPOLL_CLOEXEC)
        if self.epfd < 0:
            raise OSError(errno, os.strerror(errno))
        self.max_events = max_events
        self.events = <epoll_event *>malloc(max_events * sizeof(epoll_event))
        if self.events == NULL:
            raise MemoryError()
        self.handles = {}
        self.graveyard = []
        self.timers = []
        self.ready = []
        self.threadsafe = collections.deque()
        self.queues = []
        self.earliest_deadline = INFINITY
        self.deferred_handles = []
        self.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)
        if self.wake_fd < 0:
            raise OSError(errno, os.strerror(errno))
        cdef Waker waker = Waker.__new__(Waker)
        waker.fd = self.wake_fd
        waker.loop = self
        waker.set_interest(EPOLLIN)
        self.now = self.clock()

    def close(self):
        """Closes the loop's own descriptors (the epoll instance, the eventfd,
        the signal pipe) and forgets its handles, callbacks and timers; the
        loop cannot run again. The handles' descriptors stay their owners' to
        close, and their unregister() does nothing from now on.

        Nothing is removed from epoll first: this is also how a process forked
        from a running loop sheds it, and the epoll instance is shared across
        fork, so an EPOLL_CTL_DEL made in the child would remove the parent's
        registration of the same descriptor. Call from the main thread."""
        cdef Handle h
        if self.epfd < 0:
            return
        for h in self.handles.values():
            h.registered = False
            h.interest = 0
        self.handles = {}
        self.graveyard = []
        self.timers = []
        self.ready = []
        self.threadsafe.clear()
        self.deferred_handles = []
        self.running = False
        close(self.epfd)
        self.epfd = -1
        close(self.wake_fd)
        self.wake_fd = -1
        if self.signal_pipe is not None:
            _, r, w = self.signal_pipe
            previous = signal.set_wakeup_fd(-1)
            if previous != w:
                signal.set_wakeup_fd(previous, warn_on_full_buffer=False)  # not ours: leave it
            os.close(r)
            os.close(w)
            self.signal_pipe = None

    def __dealloc__(self):
        if self.signal_pipe is not None:
            os.close(self.signal_pipe[1])
            os.close(self.signal_pipe[2])
        if self.epfd >= 0:
            close(self.epfd)
        if self.wake_fd >= 0:
            close(self.wake_fd)
        free(self.events)

    cdef double clock(self) noexcept:
        cdef timespec ts
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return ts.tv_sec + ts.tv_nsec * 1e-9

    def time(self):
        """The loop's monotonic clock, in seconds (read once per iteration)."""
        return self.now

    # -- registration ----------------------------------------------------------

    cdef int register(self, Handle h, uint32_t events) except -1:
        cdef epoll_event ev
        if self.epfd < 0:
            raise ValueError("the loop is closed")
        ev.events = events
        ev.data.ptr = <void *>h
        if epoll_ctl(self.epfd, EPOLL_CTL_ADD, h.fd, &ev) < 0:
            raise OSError(errno, f"epoll_ctl(ADD, fd {h.fd}): {os.strerror(errno)}")
        h.loop = self
        h.interest = events
        h.registered = True
        self.handles[h.fd] = h
        return 0

    cdef int modify(self, Handle h, uint32_t events) except -1:
        cdef epoll_event ev
        ev.events = events
        ev.data.ptr = <void *>h
        if epoll_ctl(self.epfd, EPOLL_CTL_MOD, h.fd, &ev) < 0:
            raise OSError(errno, f"epoll_ctl(MOD, fd {h.fd}): {os.strerror(errno)}")
        h.interest = events
        return 0

    cdef int drop(self, Handle h) except -1:
        cdef epoll_event ev
        epoll_ctl(self.epfd, EPOLL_CTL_DEL, h.fd, &ev)
        h.registered = False
        h.interest = 0
        if self.handles.get(h.fd) is h:
            del self.handles[h.fd]
        self.graveyard.append(h)
        return 0

    cdef int requeue(self, Handle h) except -1:
        """Removes and adds h's registration again. For an EPOLLEXCLUSIVE
        listener shared by several workers this moves this worker to the back
        of the socket's wait queue: the kernel wakes the first worker waiting
        there, so without this the same idle worker would take every new
        connection (a busy one is never woken: it is not waiting)."""
        cdef epoll_event ev
        ev.events = h.interest
        ev.data.ptr = <void *>h
        epoll_ctl(self.epfd, EPOLL_CTL_DEL, h.fd, &ev)
        if epoll_ctl(self.epfd, EPOLL_CTL_ADD, h.fd, &ev) < 0:
            h.registered = False
            h.interest = 0
            if self.handles.get(h.fd) is h:
                del self.handles[h.fd]
            self.graveyard.append(h)
            raise OSError(errno, f"epoll_ctl(ADD, fd {h.fd}): {os.strerror(errno)}")
        return 0

    cdef int defer(self, Handle h) except -1:
        """Runs h._on_deferred() once, after the events of this batch. Writes
        of responses completed in one batch go out together this way: the
        client is woken once per batch, not once per response."""
        if not h.deferred:
            h.deferred = True
            self.deferred_handles.append(h)
        return 0

    cdef int _run_deferred(self) except -1:
        # deferred work may defer more (a pipelined request answered): rounds until none
        while self.deferred_handles:
            self.run_deferred_except(None)
        return 0

    cdef int run_deferred_except(self, Handle keep) except -1:
        """Runs the deferred work of every handle but `keep` (None: all of
        them) now, one round. Also called before an application runs inline
        on the loop (it may take long): responses other connections completed
        earlier in this batch leave now instead of waiting for it. `keep`'s
        own stays deferred, so its pipelined responses still go out together."""
        cdef Handle h
        cdef list todo
        todo, self.deferred_handles = self.deferred_handles, []
        for h in todo:
            if h is keep:
                self.deferred_handles.append(h)
                continue
            h.deferred = False
            try:
                h._on_deferred()
            except Exception:
                error_log.exception("error in the deferred work of fd %d", h.fd)
        return 0

    cdef DeadlineQueue deadline_queue(self, double duration):
        """A queue of timeouts of this duration, expired by this loop."""
        cdef DeadlineQueue q = DeadlineQueue.__new__(DeadlineQueue, duration)
        q.earliest = &self.earliest_deadline  # the queue never outlives its loop (self.queues)
        self.queues.append(q)
        return q

    # -- Python-facing API -----------------------------------------------------

    def add_reader(self, int fd, callback, *args):
        """Calls callback(*args) whenever fd is readable."""
        self._watch(fd, callback, args, True)

    def add_writer(self, int fd, callback, *args):
        """Calls callback(*args) whenever fd is writable."""
        self._watch(fd, callback, args, False)

    def remove_reader(self, int fd):
        return self._unwatch(fd, True)

    def remove_writer(self, int fd):
        return self._unwatch(fd, False)

    def _watch(self, int fd, callback, tuple args, bint reading):
        cdef Watcher w
        existing = self.handles.get(fd)
        if existing is None:
            w = Watcher.__new__(Watcher)
            w.fd = fd
            w.loop = self
        elif isinstance(existing, Watcher):
            w = <Watcher>existing
        else:
            raise ValueError(f"fd {fd} is owned by the server, not a watcher")
        if reading:
            w.on_read, w.read_args = callback, args
        else:
            w.on_write, w.write_args = callback, args
        w.set_interest(w.wanted())

    def _unwatch(self, int fd, bint reading):
        cdef Watcher w
        existing = self.handles.get(fd)
        if not isinstance(existing, Watcher):
            return False
        w = <Watcher>existing
        if reading:
            w.on_read = None
        else:
            w.on_write = None
        if w.wanted() == 0:
            w.unregister()
        else:
            w.set_interest(w.wanted())
        return True

    def call_soon(self, callback, *args):
        """Runs callback(*args) in the next iteration."""
        self.ready.append((callback, args))

    def call_soon_threadsafe(self, callback, *args):
        """call_soon from any thread: wakes the loop."""
        cdef uint64_t one = 1
        self.threadsafe.append((callback, args))
        write(self.wake_fd, &one, sizeof(one))

    def call_later(self, double delay, callback, *args):
        """Runs callback(*args) after delay seconds; returns a cancellable Timer."""
        global timer_seq
        cdef Timer t = Timer.__new__(Timer)
        t.when = self.clock() + (delay if delay > 0 else 0)
        t.callback = callback
        t.args = args
        timer_seq += 1
        t.seq = timer_seq
        heapq.heappush(self.timers, t)
        return t

    def watch_signals(self, on_signals=None):
        """Wakes the loop for every signal that has a Python handler. Call
        from the main thread, once, before run(). on_signals(), when given,
        runs in the iteration a signal wakes the loop, after the handlers:
        they record the signal, on_signals acts on it."""
        cdef SignalPipe pipe
        if self.signal_pipe is not None:
            return
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        pipe = SignalPipe.__new__(SignalPipe)
        pipe.fd = r
        pipe.loop = self
        pipe.on_signals = on_signals
        pipe.set_interest(EPOLLIN)
        self.signal_pipe = (pipe, r, w)

    def set_stats(self, WorkerStats stats):
        """Writes a heartbeat into stats at every iteration (at least once a second)."""
        self.stats = stats

    def stop(self):
        """Ends run() after the current iteration."""
        self.running = False

    def run(self):
        """Runs until stop()."""
        self.running = True
        self.now = self.clock()
        if self.stats is not None:
            # first beat as the loop starts: the worker is ready to serve now,
            # not after its first wait (which may last a second when idle)
            self.stats.s.heartbeat_ns = <uint64_t>(self.now * 1e9)
        while self.running:
            self._run_once()

    def run_once(self):
        self._run_once()

    # -- driven from an outer loop (the ASGI worker's asyncio loop) --------------
    # That loop watches fileno() (an epoll descriptor is readable while any
    # of its descriptors is ready), calls poll() when it is, and calls it
    # again after next_timeout() seconds for the deadlines and timers.

    def fileno(self):
        """The epoll descriptor, for an outer loop to watch."""
        return self.epfd

    def start(self):
        """run() without its waiting: marks the loop running and beats once."""
        self.running = True
        self.now = self.clock()
        if self.stats is not None:
            self.stats.s.heartbeat_ns = <uint64_t>(self.now * 1e9)

    def poll(self):
        """One iteration that does not wait; False once stop() was called."""
        return self._poll()

    def next_timeout(self):
        """Seconds until this loop has work due without an event (at most 1)."""
        return self._next_timeout()

    cdef bint _poll(self) except -1:
        self._run_batch(0)
        return self.running

    cdef double _next_timeout(self) except? -1.0:
        return 0.0 if self.deferred_handles else self._next_timeout_ms() / 1000.0

    def run_deferred(self):
        """Runs the deferred work (the flush of finished responses) now."""
        self._run_deferred()

    @property
    def handle_count(self):
        return len(self.handles)

    # -- one iteration ---------------------------------------------------------

    cdef int _next_timeout_ms(self):
        cdef double nearest = -1, when
        cdef Timer t
        if self.ready or self.threadsafe:
            return 0
        if self.earliest_deadline != INFINITY:
            nearest = self.earliest_deadline
        if self.timers:
            t = <Timer>self.timers[0]
            if nearest < 0 or t.when < nearest:
                nearest = t.when
        if nearest < 0:
            return 1000  # wake now and then: signals are checked on EINTR anyway
        when = (nearest - self.clock()) * 1000.0
        if when <= 0:
            return 0
        return <int>when + 1

    cdef int _run_once(self) except -1:
        return self._run_batch(0 if self.deferred_handles else self._next_timeout_ms())

    cdef int _run_batch(self, int timeout) except -1:
        cdef int n, i
        cdef Handle h
        with nogil:
            n = epoll_wait(self.epfd, self.events, self.max_events, timeout)
        if n < 0:
            if errno != EINTR:
                raise OSError(errno, f"epoll_wait: {os.strerror(errno)}")
            n = 0
        PyErr_CheckSignals()  # runs pending Python signal handlers (a flag test when none); they may raise
        self.now = self.clock()
        if self.stats is not None:
            # the arbiter reads this: a loop that stops turning is a stuck worker
            self.stats.s.heartbeat_ns = <uint64_t>(self.now * 1e9)
        for i in range(n):
            h = <Handle>self.events[i].data.ptr
            if not h.registered:
                continue  # dropped earlier in this batch
            try:
                h._on_events(self.events[i].events)
            except Exception:
                error_log.exception("error in the event handler of fd %d", h.fd)
        if self.ready:
            ready, self.ready = self.ready, []
            for callback, args in ready:
                try:
                    callback(*args)
                except Exception:
                    error_log.exception("error in callback %r", callback)
        while self.threadsafe:
            callback, args = self.threadsafe.popleft()
            try:
                callback(*args)
            except Exception:
                error_log.exception("error in callback %r", callback)
        if self.deferred_handles:
            self._run_deferred()
        self._expire()
        if self.timers:
            self._run_timers()
        if self.graveyard:
            self.graveyard = []
        return 0

    cdef int _expire(self) except -1:
        cdef DeadlineQueue q
        cdef TimedHandle h
        cdef double earliest = INFINITY
        if self.now < self.earliest_deadline:
            return 0  # before every head: nothing to expire (module docstring, step 4)
        for q in self.queues:
            while q.head is not None and q.head.deadline <= self.now:
                h = q.head
                q.unlink(h)
                try:
                    h._on_timeout()
                except Exception:
                    error_log.exception("error in the timeout of fd %d", h.fd)
        for q in self.queues:  # the bound made exact (a timeout may have armed another queue)
            if q.head is not None and q.head.deadline < earliest:
                earliest = q.head.deadline
        self.earliest_deadline = earliest
        return 0

    cdef int _run_timers(self) except -1:
        cdef Timer t
        while self.timers:
            t = <Timer>self.timers[0]
            if t.when > self.now:
                break
            heapq.heappop(self.timers)
            if t.cancelled:
                continue
            try:
                t.callback(*t.args)
            except Exception:
                error_log.exception("error in timer %r", t.callback)
        return 0
