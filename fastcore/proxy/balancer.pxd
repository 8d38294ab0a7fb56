# Declarations that compile balancer.py (an augmenting .pxd: the .py stays
# plain Python, read and tested as such). Member and Pool become extension
# types, so the compiled data path (fastcore/_core/proxy.pyx) updates a
# member's counters as C fields and calls Pool.pick without a Python call;
# every name here is still visible and writable from Python.
cimport cython

cdef class Member:
    cdef public str address
    cdef public long weight
    cdef public bint backup
    cdef public long max_conns
    cdef public long active
    cdef public long requests
    cdef public long failures
    cdef public long retries
    cdef public double duration_seconds_sum
    cdef public str state
    cdef public double down_until
    cdef public str health
    cdef public object recovered_at
    cdef public long recent_failures
    cdef public double failure_window_start
    cdef public long max_fails
    cdef public double fail_timeout
    cdef public long consecutive_passes
    cdef public long consecutive_fails
    cdef public double score
    cdef public object server_name      # str or None: the TLS name of a member resolved from a DNS name

    cpdef bint healthy(self, double now)
    cpdef bint available(self, double now)
    cpdef bint note_failure(self, double now)
    cpdef note_success(self, double now)


cdef class Pool:
    cdef dict __dict__                  # the worker hangs discovery state on a pool
    cdef public object name
    cdef public str balance
    cdef public object hash_key
    cdef public object hash_header
    cdef public long max_fails
    cdef public double fail_timeout
    cdef public double slow_start
    cdef public str panic
    cdef public double panic_threshold
    cdef public object random
    cdef public list members
    cdef public dict by_address
    cdef public object rings

    @cython.locals(member=Member, primaries=Py_ssize_t, candidates=list, backup_candidates=list,
                   healthy_primaries=Py_ssize_t, healthy_backup=bint, in_panic=bint)
    cpdef Member pick(self, view, double now, exclude=*)

    cpdef Member _choose(self, list candidates, view, double now, bint backup, bint ignore_health)

    @cython.locals(member=Member, best=Member, total=double, weight=double)
    cpdef Member _smooth_round_robin(self, list candidates, double now)
