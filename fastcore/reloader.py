"""--reload: watch the application's source files, restart the workers on change.

Theory of operation
-------------------
One inotify descriptor in the arbiter, read by the arbiter's own loop
(add_reader): no polling, and the arbiter wakes only when a file changes.
The watched directories are the application's directory (the current
directory, or --chdir) and everything below it, plus the directory of the
application's top-level module or package when it lives elsewhere; never a
virtual environment, site-packages, a hidden directory or __pycache__. A
directory created or moved in later is watched from then on.

A change is the end of a write (IN_CLOSE_WRITE), a file moved in or out, or
a file deleted, of a name ending in .py. Editors make several of these per
save (a backup, a rename, the write itself): the first one starts a short
wait (SETTLE) and whatever else arrives during it joins the same reload.

The reload itself is the arbiter's (SIGHUP's): new workers import the code,
the old ones drain once the new ones serve, and a new worker that cannot
import the application fails the reload while the old workers keep serving.
"""
import ctypes
import errno
import logging
import os
import struct
import sys

__all__ = ["SourceWatcher", "watched_roots"]

error_log = logging.getLogger("fastcore.error")

SETTLE = 0.2   # seconds: the events of one save (an editor's backup, rename, write) make one reload

# <sys/inotify.h>
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
WATCH_MASK = IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_ONLYDIR
EVENT_HEAD = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of NUL-padded name

SKIPPED_NAMES = frozenset({"__pycache__", "node_modules", "site-packages", "dist-packages"})


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.inotify_init1.argtypes = [ctypes.c_int]
    libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    return libc


def _skipped(path, name):
    """Directories that hold no application source of the user's."""
    return (name.startswith(".") or name in SKIPPED_NAMES
            or os.path.exists(os.path.join(path, "pyvenv.cfg")))  # a virtual environment


def _installed(path):
    """A path inside the interpreter's installation or an environment's packages."""
    real = os.path.realpath(path)
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    return any(real == p or real.startswith(p + os.sep) for p in prefixes) or \
        any(part in ("site-packages", "dist-packages") for part in real.split(os.sep))


def watched_roots(app_spec, directory):
    """The directories to watch (each with what is below it) for the
    application `app_spec` (MODULE:APP) found from `directory`."""
    import importlib.machinery

    roots = [os.path.realpath(directory)]
    top = app_spec.partition(":")[0].split(".")[0] if app_spec else ""
    if top:
        spec = importlib.machinery.PathFinder.find_spec(top, [directory] + sys.path[1:])
        if spec is not None and spec.origin not in (None, "built-in", "frozen"):
            found = os.path.dirname(spec.origin)
            if spec.submodule_search_locations:  # a package: its parent holds it
                found = os.path.dirname(found)
            found = os.path.realpath(found)
            inside = any(found == r or found.startswith(r + os.sep) for r in roots)
            if not inside and not _installed(found):
                roots.append(found)
    return roots


class SourceWatcher:
    """Calls on_change(names) once per burst of changes to .py files under
    `roots`, from `loop` (the arbiter's). close() in a forked worker only
    closes the descriptor."""

    def __init__(self, loop, roots, on_change):
        self.loop = loop
        self.on_change = on_change
        self.libc = _libc()
        self.fd = self.libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), f"inotify_init1: {os.strerror(ctypes.get_errno())}")
        self.directories = {}     # watch descriptor -> directory
        self.changed = []         # names seen since the first event of this burst
        self.timer = None
        self.limit_reached = False
        self.roots = list(roots)
        for root in roots:
            self.watch_tree(root)
        loop.add_reader(self.fd, self.read_events)

    def watch_tree(self, top):
        """Watches top and the directories below it; returns whether it holds .py files."""
        sources = False
        for path, subdirectories, files in os.walk(top):
            if not self.watch(path):
                subdirectories[:] = []
                continue
            sources = sources or any(name.endswith(".py") for name in files)
            subdirectories[:] = [name for name in subdirectories if not _skipped(os.path.join(path, name), name)]
        return sources

    def ignored(self, directory):
        """A directory that became one we skip after it was watched (a
        virtual environment being made in the project: its pyvenv.cfg comes
        after the directory), or lies under one."""
        while directory not in self.roots:
            parent = os.path.dirname(directory)
            if parent == directory:
                return False
            if _skipped(directory, os.path.basename(directory)):
                return True
            directory = parent
        return False

    def watch(self, path):
        wd = self.libc.inotify_add_watch(self.fd, os.fsencode(path), WATCH_MASK)
        if wd < 0:
            code = ctypes.get_errno()
            if code == errno.ENOSPC and not self.limit_reached:
                self.limit_reached = True
                error_log.warning("reload: the inotify watch limit (fs.inotify.max_user_watches) is reached "
                                  "at %d directories: %s and what follows are not watched", len(self.directories),
                                  path)
            return False
        self.directories[wd] = path
        return True

    def read_events(self):
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            except OSError as e:
                error_log.error("reload: reading inotify events failed: %s", e)
                return
            offset = 0
            while offset < len(data):
                wd, mask, _, length = EVENT_HEAD.unpack_from(data, offset)
                name = data[offset + EVENT_HEAD.size: offset + EVENT_HEAD.size + length].rstrip(b"\0")
                offset += EVENT_HEAD.size + length
                self.handle_event(wd, mask, os.fsdecode(name))

    def handle_event(self, wd, mask, name):
        if mask & IN_Q_OVERFLOW:
            self.note_change("(events lost: queue overflow)")
            return
        if mask & IN_IGNORED:  # the directory went away
            self.directories.pop(wd, None)
            return
        directory = self.directories.get(wd)
        if directory is None:
            return
        path = os.path.join(directory, name)
        if self.ignored(directory):
            return
        if mask & IN_ISDIR:
            if mask & (IN_CREATE | IN_MOVED_TO) and not _skipped(path, name) and self.watch_tree(path):
                self.note_change(path)
            return
        if name.endswith(".py") and mask & (IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE):
            self.note_change(path)

    def note_change(self, path):
        if path not in self.changed:
            self.changed.append(path)
        if self.timer is None:
            self.timer = self.loop.call_later(SETTLE, self.settled)

    def settled(self):
        changed, self.changed, self.timer = self.changed, [], None
        self.on_change(changed)

    def close(self):
        """In the arbiter: stop watching. In a forked worker (whose copy of
        the loop is already closed): just close the descriptor."""
        if self.fd < 0:
            return
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        try:
            self.loop.remove_reader(self.fd)
        except Exception:  # a closed loop: nothing registered any more
            pass
        os.close(self.fd)
        self.fd = -1
