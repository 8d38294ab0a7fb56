"""Start-up checks of a resolved configuration against this machine.

``build_config`` checks the form of each value; what only the machine can
tell is checked here, by ``fastcore serve`` and ``fastcore check`` before
any socket is bound or worker forked, and by a reload (HUP) before it
replaces a working configuration:

- the accounts of ``user`` and ``group`` exist;
- every file the server writes can be written by the process that opens
  it: the pid file by the arbiter; the error log by the arbiter and by each
  worker, the access log by each worker, and a worker runs as ``user`` and
  ``group`` when the arbiter is root (permission bits are read for that
  account: the arbiter cannot ask the kernel on its behalf);
- no static root holds the application's own module or package, whose
  source it would serve as files, unless ``static_allow_app`` says so;
- the TLS files can be read, no private key may be read by every user of
  the machine, and OpenSSL takes them (each key matches its certificate,
  the cipher list and the CA file make sense): the contexts are made once
  here and thrown away, the workers make their own.

``problems()`` returns every problem, each one line naming the setting and
its value, so that one run shows every mistake; it never raises for a bad
configuration and runs none of the application's code.
"""
import grp
import importlib.machinery
import os
import pwd
import stat
import sys
from typing import List, Optional, Tuple

from fastcore.appload import AppLoadError, parse_app_spec

__all__ = ["cannot_write", "problems", "worker_account"]

# (uid, gids, name) a file is opened as; None for this process itself
Account = Optional[Tuple[int, Tuple[int, ...], str]]


def worker_account(config, problems_out: List[str]) -> Account:
    """The (uid, gids, name) workers run as, None when they keep the arbiter's
    (not root, or no user/group). Unknown accounts go to problems_out."""
    uid = gid = None
    if config.group:
        try:
            gid = int(config.group) if config.group.isdigit() else grp.getgrnam(config.group).gr_gid
        except KeyError:
            problems_out.append(f"setting group: no group {config.group!r} on this machine")
    if config.user:
        try:
            entry = pwd.getpwnam(config.user) if not config.user.isdigit() else pwd.getpwuid(int(config.user))
            uid = entry.pw_uid
            if gid is None:
                gid = entry.pw_gid
        except KeyError:
            if not config.user.isdigit():
                problems_out.append(f"setting user: no user {config.user!r} on this machine")
            elif not config.group:
                problems_out.append(f"setting user: user {config.user} has no entry in the user database, "
                                    f"so its group is unknown: give group too")
            else:
                uid = int(config.user)
    if os.getuid() != 0 or (uid is None and gid is None):
        return None
    name = f"user {config.user}" if config.user else f"group {config.group}"
    return (0 if uid is None else uid, () if gid is None else (gid,), name)


def _permits(info: os.stat_result, account: Tuple[int, Tuple[int, ...], str], bits: int) -> bool:
    """Do the permission bits of `info` grant `bits` (a mask of the owner's
    bits: S_IWUSR, S_IXUSR) to `account`?"""
    uid, gids, _ = account
    if uid == 0:
        return True
    if info.st_uid == uid:
        return info.st_mode & bits == bits
    if info.st_gid in gids:
        return info.st_mode & (bits >> 3) == bits >> 3
    return info.st_mode & (bits >> 6) == bits >> 6


def cannot_write(path: str, account: Account) -> Optional[str]:
    """Why `path` cannot be opened to append (created if missing) by
    `account` (None: this process), or None when it can."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        return "it is a directory"
    exists = os.path.exists(path)
    target = path if exists else os.path.dirname(path)
    if not exists and not os.path.isdir(target):
        return f"the directory {target} does not exist"
    if account is None:
        if not os.access(target, os.W_OK | (0 if exists else os.X_OK)):
            return "permission denied" if exists else f"cannot create files in {target}"
        return None
    # every directory on the way, from the root down, must be searchable by the account
    directories = [os.path.dirname(path)]
    while os.path.dirname(directories[-1]) != directories[-1]:
        directories.append(os.path.dirname(directories[-1]))
    for directory in reversed(directories):
        if not _permits(os.stat(directory), account, stat.S_IXUSR):
            return f"{account[2]} cannot enter {directory}"
    bits = stat.S_IWUSR if exists else stat.S_IWUSR | stat.S_IXUSR
    if not _permits(os.stat(target), account, bits):
        return (f"{account[2]} may not write it" if exists else
                f"{account[2]} may not create files in {target}")
    return None


def _application_source(app_spec: str, chdir: Optional[str]) -> Optional[str]:
    """The file of the application's top-level module, or the directory of
    its top-level package, found as the workers will import it (its
    directory first on sys.path) without importing it; None if not found."""
    try:
        top = parse_app_spec(app_spec).module.split(".")[0]
    except AppLoadError:
        return None
    directory = os.path.abspath(chdir or os.getcwd())
    spec = importlib.machinery.PathFinder.find_spec(top, [directory] + [p for p in sys.path if p != directory])
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return os.path.realpath(list(spec.submodule_search_locations)[0])
    if spec.origin and os.path.isabs(spec.origin):
        return os.path.realpath(spec.origin)
    return None


def problems(config, app_spec: Optional[str] = None) -> List[str]:
    """Every problem of `config` on this machine, one line each (empty: none)."""
    found: List[str] = []
    account = worker_account(config, found)
    writers = (("pid", config.pid, (None,)),
               ("error_log", config.error_log, (None, account) if account is not None else (None,)),
               ("access_log", config.access_log, (account,)))
    for name, path, accounts in writers:
        if path in (None, "-"):
            continue
        for who in accounts:
            why = cannot_write(path, who)
            if why is not None:
                found.append(f"setting {name}: cannot write {path!r}: {why}")
                break
    if app_spec is not None and config.static and not config.static_allow_app:
        source = _application_source(app_spec, config.chdir)
        if source is not None:
            for location in config.static:
                root = os.path.realpath(location.root)
                if os.path.commonpath([root, source]) == root:
                    found.append(f"setting static: {location.prefix}={location.root} would serve the "
                                 f"application's own source {source}; serve another directory, or add "
                                 f"--static-allow-app if that is intended")
    found.extend(tls_problems(config))
    found.extend(proxy_tls_problems(config))
    return found


def proxy_tls_problems(config) -> List[str]:
    """The problems of the TLS settings toward https:// upstream servers
    (files OpenSSL cannot use), one line each."""
    from fastcore._core.upstream import TLSClient
    found: List[str] = []
    for location in config.proxy:
        if not any(server.address.startswith("https://") for server in location.servers):
            continue
        try:
            TLSClient(location.tls_verify, location.tls_ca_certs, location.tls_certfile, location.tls_keyfile)
        except ValueError as error:
            found.append(f"setting {error} ([[proxy]] {location.prefix})")
    return found


def tls_problems(config) -> List[str]:
    """The problems of the TLS settings, one line each (empty: none, or no TLS)."""
    if config.certfile is None:
        return []
    found: List[str] = []
    files = [("certfile", config.certfile), ("keyfile", config.keyfile)]
    if config.ca_certs is not None:
        files.append(("ca_certs", config.ca_certs))
    for certificate in config.tls:
        files += [(f"tls ({certificate.server_names[0]})", certificate.certfile),
                  (f"tls ({certificate.server_names[0]})", certificate.keyfile)]
    keys = {config.keyfile} | {certificate.keyfile for certificate in config.tls}
    for name, path in files:
        try:
            with open(path, "rb"):
                pass
            info = os.stat(path)
        except OSError as error:
            found.append(f"setting {name}: cannot read {path!r}: {error.strerror or error}")
            continue
        if path in keys and info.st_mode & stat.S_IROTH:
            found.append(f"setting {name}: the private key {path!r} may be read by every user of this machine "
                         f"(mode {stat.S_IMODE(info.st_mode):04o}): chmod o-r {path}")
    if found:
        return found
    from fastcore.worker import make_tls_context
    from fastcore._core.tls import TLSConfigError
    try:
        make_tls_context(config)
    except TLSConfigError as error:
        found.append(f"setting {error}")
        return found
    from fastcore import stapling
    found.extend(f"setting {problem}" for problem in stapling.problems(config))
    return found
