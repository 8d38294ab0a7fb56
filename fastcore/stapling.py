"""OCSP stapling: the arbiter keeps, for each certificate, a current OCSP
response that every worker staples to the handshakes of clients that ask
for one (RFC 6066's status_request), so that a browser learns that the
certificate is not revoked without asking the CA itself.

Theory of operation:
- One shared slot per certificate (fastcore._core.tls.new_staples: slot 0
  for the default certificate, slot i + 1 for the i-th [[tls]] table),
  made by the arbiter before it forks; the workers' handshakes copy from
  it, the arbiter alone writes it.
- A certificate with a response file (ssl_stapling_file, or stapling_file
  in its [[tls]] table) staples that file, read at start and on each HUP.
  Otherwise, with ssl_stapling, its response is fetched from the OCSP
  responder the certificate names (or ssl_stapling_responder).
- Fetching is blocking I/O (a DNS lookup, an HTTP POST), which the arbiter
  must not do in its own loop: it forks a fetcher process that fetches the
  due certificates one after the other, checks each answer (signed by the
  issuer, about this certificate, current) and writes the good ones into
  the slots, then exits. One fetcher at a time, killed when it outlives
  its time (ssl_stapling_timeout per certificate).
- A response is fetched again after ssl_stapling_refresh, or at half the
  time left to its nextUpdate when that comes sooner; a failed fetch is
  tried again after RETRY seconds (or ssl_stapling_refresh when shorter),
  while the last good response stays stapled until its nextUpdate passes.
  A response saying "revoked" is stapled too (it is the truth, and a
  warning is logged); "unknown" is not.
"""
import http.client
import logging
import os
import signal
import sys
import time
import urllib.parse

from fastcore._core.tls import (STAPLE_MAX, new_staples, ocsp_check, ocsp_request, staple_response, staple_state,
                                store_staple)

error_log = logging.getLogger("fastcore.error")

RETRY = 300.0               # seconds before a failed fetch is tried again (nginx's)
FETCHER_GRACE = 5.0         # seconds a fetcher may outlive its fetches' timeouts before it is killed


def certificates(config):
    """(certfile, stapling_file, label) of every certificate, in slot order."""
    found = [(config.certfile, config.ssl_stapling_file, "ssl_stapling_file")]
    for table in config.tls:
        found.append((table.certfile, table.stapling_file, f"tls ({table.server_names[0]}) stapling_file"))
    return found


def stapling_wanted(config):
    """Whether any certificate staples: ssl_stapling, or a response file."""
    return config.certfile is not None and (
        config.ssl_stapling or any(stapling_file for _, stapling_file, _ in certificates(config)))


def problems(config):
    """What keeps stapling from working, one line each, checked at start and
    at each reload: a response file that is not a current response for its
    certificate; with ssl_stapling, a certificate file without its issuer or
    a certificate that names no responder (without ssl_stapling_responder)."""
    found = []
    if not stapling_wanted(config):
        return found
    for certfile, stapling_file, label in certificates(config):
        if stapling_file is not None:
            try:
                with open(stapling_file, "rb") as f:
                    ocsp_check(certfile, f.read(STAPLE_MAX + 1))
            except OSError as e:
                found.append(f"{label}: cannot read {stapling_file!r}: {e.strerror}")
            except ValueError as e:
                found.append(f"{label}: {stapling_file!r} is no OCSP response to staple to {certfile}: {e}")
        elif config.ssl_stapling:
            try:
                _, url = ocsp_request(certfile)
            except ValueError as e:
                found.append(f"ssl_stapling: {e}")
                continue
            if not config.ssl_stapling_responder and not url.startswith("http://"):
                found.append(f"ssl_stapling: the certificate in {certfile} names no http:// OCSP responder "
                             f"({url or 'none'}): set ssl_stapling_responder")
    return found


class Stapler:
    """The OCSP responses of one configuration's certificates, in shared
    memory (`staples`, for make_tls_context), kept current by tick()."""

    def __init__(self, config, previous=None):
        self.config = config
        self.certificates = certificates(config)
        self.staples = new_staples(len(self.certificates))
        self.fetcher = None             # (pid, deadline, slots, started) of the running fetcher
        self.next_fetch = {}            # slot -> time.time() of its next fetch (fetched slots only)
        for slot, (certfile, stapling_file, label) in enumerate(self.certificates):
            if stapling_file is not None:
                self.load_file(slot, certfile, stapling_file, label)
            elif config.ssl_stapling:
                self.next_fetch[slot] = 0.0
                if previous is not None:
                    self.take_over(slot, certfile, previous)

    def load_file(self, slot, certfile, stapling_file, label):
        try:
            with open(stapling_file, "rb") as f:
                der = f.read(STAPLE_MAX + 1)
            status, expires = ocsp_check(certfile, der)
        except (OSError, ValueError) as e:  # checked by preflight: changed on disk since
            error_log.error("%s: %s not stapled: %s", label, stapling_file, e)
            return
        store_staple(self.staples, slot, der, expires, status)
        log_status(certfile, status, expires, stapling_file)

    def take_over(self, slot, certfile, previous):
        """A reload: the previous configuration's response for the same
        certificate stays stapled, and is refreshed when it was due."""
        for old_slot in previous.next_fetch:
            der = staple_response(previous.staples, old_slot)
            if not der:
                continue
            try:
                status, expires = ocsp_check(certfile, der)
            except ValueError:
                continue  # another certificate, or out of date
            store_staple(self.staples, slot, der, expires, status)
            self.next_fetch[slot] = previous.next_fetch[old_slot]
            return

    def tick(self, now):
        """Starts a fetcher for the slots that are due, kills one that
        outlived its time. Called by the arbiter's supervision."""
        if self.fetcher is not None:
            pid, deadline, _, _ = self.fetcher
            if time.monotonic() > deadline:
                error_log.warning("stapling: the OCSP fetcher %d took too long (ssl_stapling_timeout %gs a "
                                  "certificate); killed", pid, self.config.ssl_stapling_timeout)
                self.stop()
            return
        due = [slot for slot, when in self.next_fetch.items() if when <= now]
        if not due:
            return
        retry = min(RETRY, self.config.ssl_stapling_refresh)
        for slot in due:
            self.next_fetch[slot] = now + retry  # moved on by reaped() when the fetch succeeds
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                become_fetcher()
                status = fetch_all(self.config, self.staples, [(slot, self.certificates[slot][0]) for slot in due])
            except BaseException:
                error_log.exception("stapling: the OCSP fetcher failed")
            finally:
                sys.stderr.flush()
                os._exit(status)
        deadline = time.monotonic() + len(due) * self.config.ssl_stapling_timeout + FETCHER_GRACE
        self.fetcher = (pid, deadline, due, int(now))

    def reaped(self, pid):
        """Whether pid was this stapler's fetcher (the arbiter reaped it):
        the slots it filled are due again after ssl_stapling_refresh, or at
        half the time left to their nextUpdate."""
        if self.fetcher is None or self.fetcher[0] != pid:
            return False
        _, _, slots, started = self.fetcher
        self.fetcher = None
        for slot in slots:
            length, expires, fetched, _ = staple_state(self.staples, slot)
            if length and fetched >= started:  # stored by this fetcher
                self.next_fetch[slot] = next_fetch_time(fetched, expires, self.config.ssl_stapling_refresh)
        return True

    def stop(self):
        """Kills a running fetcher (the arbiter stops, or reloads)."""
        if self.fetcher is None:
            return
        pid = self.fetcher[0]
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        self.fetcher = None


def next_fetch_time(fetched, expires, refresh):
    """When a response stored at `fetched` is fetched again."""
    when = fetched + refresh
    if expires:
        when = min(when, fetched + max(1.0, (expires - fetched) / 2))
    return when


def log_status(certfile, status, expires, source):
    until = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(expires)) if expires else "no nextUpdate"
    if status == "revoked":
        error_log.warning("stapling: %s says the certificate in %s is REVOKED (stapled: clients will refuse it)",
                          source, certfile)
    else:
        error_log.info("stapling: OCSP response for %s from %s: %s, until %s", certfile, source, status, until)


def become_fetcher():
    """The forked fetcher: default signal handling (the arbiter's handlers
    only queue signals for the arbiter's loop, which does not run here)."""
    signal.set_wakeup_fd(-1)
    for name in ("SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGTTIN", "SIGTTOU",
                 "SIGCHLD", "SIGWINCH"):
        signal.signal(getattr(signal, name), signal.SIG_DFL)


def fetch_all(config, staples, due):
    """Fetches, checks and stores the response of each (slot, certfile);
    the exit status: 0 when every one was stored."""
    failed = 0
    for slot, certfile in due:
        source = "?"
        try:
            request, url = ocsp_request(certfile)
            source = config.ssl_stapling_responder or url
            der = fetch(source, request, config.ssl_stapling_timeout)
            status, expires = ocsp_check(certfile, der)
        except (OSError, ValueError, http.client.HTTPException) as e:
            failed += 1
            length, expires, _, _ = staple_state(staples, slot)
            keeping = "the last response stays stapled until its nextUpdate" if length else "nothing stapled"
            error_log.warning("stapling: no OCSP response for %s from %s: %s; %s, next try in %gs", certfile,
                              source, str(e) or type(e).__name__, keeping,
                              min(RETRY, config.ssl_stapling_refresh))
            continue
        if status == "unknown":
            failed += 1
            error_log.warning("stapling: the responder %s does not know the certificate in %s; not stapled",
                              source, certfile)
            continue
        store_staple(staples, slot, der, expires, status)
        log_status(certfile, status, expires, source)
    return 1 if failed else 0


def fetch(url, request, timeout):
    """POSTs the DER request to an http:// OCSP responder (RFC 6960
    appendix A.1); returns the DER response. Raises OSError, ValueError or
    http.client.HTTPException."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"not an http:// URL: {url!r}")
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        connection.request("POST", parts.path or "/", body=request,
                           headers={"Content-Type": "application/ocsp-request",
                                    "Accept": "application/ocsp-response", "Connection": "close"})
        response = connection.getresponse()
        body = response.read(STAPLE_MAX + 1)
    finally:
        connection.close()
    if response.status != 200:
        raise ValueError(f"the responder answered HTTP {response.status} {response.reason}")
    if len(body) > STAPLE_MAX:
        raise ValueError(f"a response over {STAPLE_MAX} bytes")
    return body
