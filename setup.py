"""Build of fastcore's compiled core: Cython modules in fastcore/_core over
plain C in src_c/. Metadata lives in pyproject.toml.

A build from source (an sdist, or `pip install .` from a checkout) compiles
the extensions in parallel, one per CPU, and without debug information
(-g0 overrides the -g that Python's own flags bring: connection.c compiles
in a fifth less time, to an eighth of the object). FASTCORE_DEBUG_BUILD=1
gives -O0 -g for a debugger.
The released wheel is built and checked by .ci/wheel-check."""
import glob
import os
import subprocess
import sys

import setuptools
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# pyproject.toml's license = "MIT" (an SPDX expression) needs setuptools 77;
# pip's isolated builds fetch it, an in-place build uses the environment's
if int(setuptools.__version__.split(".")[0]) < 77:
    sys.exit(f"setup.py: setuptools {setuptools.__version__} is too old to read pyproject.toml "
             f"(license = \"MIT\" needs 77 or later): pip install -U 'setuptools>=77'")

try:
    from Cython import __version__ as cython_version
    from Cython.Build import cythonize
except ImportError:  # building from an sdist that ships the generated C
    cythonize = None

# -O3 and no -march: the wheel runs on any x86-64; the C parser picks its
# SIMD level (AVX2/SSE2/scalar) at run time from the CPU's features.
COMPILE_ARGS = ["-O3", "-g0", "-std=c11", "-fno-strict-aliasing"]
if os.environ.get("FASTCORE_DEBUG_BUILD"):
    COMPILE_ARGS = ["-O0", "-g", "-std=c11"]

C_SOURCES = {
    "parser": ["src_c/fc_http.c"],
    "response": ["src_c/fc_static.c"],  # fc_http_date_format for the Date header
    "router": ["src_c/fc_static.c"],
    "filecache": ["src_c/fc_static.c", "src_c/fc_fs.c"],
    "static": ["src_c/fc_static.c"],
    "proxy": ["src_c/fc_forward.c"],
    "realip": ["src_c/fc_realip.c"],
    "connection": ["src_c/fc_limits.c", "src_c/fc_tls.c"],  # limits: releases a request's count
    "limits": ["src_c/fc_limits.c", "src_c/fc_realip.c"],
    "websocket": ["src_c/fc_ws.c"],
    # TLS: contexts (tls), handshake and reads (connection), writes (buffer), freeing (stream)
    "tls": ["src_c/fc_tls.c", "src_c/fc_ocsp.c"],  # and the OCSP side of stapling
    "buffer": ["src_c/fc_tls.c"],
    "stream": ["src_c/fc_tls.c"],
    "upstream": ["src_c/fc_tls.c"],  # the client side: contexts, handshake and reads to https:// servers
}

# The modules over fc_tls.c link the system's OpenSSL 3 (libssl.so.3,
# libcrypto.so.3). The wheel does not carry them: auditwheel repair
# excludes them (.ci/wheel-check), as distributions' nginx packages use the
# system's OpenSSL and get its security updates.
OPENSSL_LIBRARIES = ["ssl", "crypto"]


def check_openssl_headers():
    """One clear line, not a page of compiler errors, when OpenSSL's headers
    are missing (a machine without the development package)."""
    compiler = os.environ.get("CC", "cc").split()
    probe = b"#include <openssl/ssl.h>\n#if OPENSSL_VERSION_MAJOR < 3\n#error OpenSSL 3 needed\n#endif\n"
    try:
        result = subprocess.run([*compiler, "-E", "-x", "c", "-", "-o", os.devnull], input=probe,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return  # no compiler: the build says so itself
    if result.returncode != 0:
        sys.exit("setup.py: error: OpenSSL 3 headers (openssl/ssl.h) not found: install the Debian/Ubuntu "
                 "package libssl-dev (Fedora: openssl-devel)")


# Plain Python modules compiled as they are, with an augmenting .pxd beside
# them for their types: the proxy's balancer (the data path reads a member's
# counters as C fields and calls Pool.pick once per request). The .py ships
# too, and runs as Python wherever the extension is absent.
COMPILED_PYTHON = {"balancer": "fastcore/proxy/balancer"}


def build_jobs():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class ParallelBuildExt(build_ext):
    """build_ext compiling one extension per CPU unless -j says otherwise
    (pip gives setup.py no way to pass -j)."""

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:
            self.parallel = build_jobs()

    def run(self):
        check_openssl_headers()
        super().run()


def our_sources():
    """Every file of ours that Cython reads for any module (conservatively)."""
    return [*glob.glob("fastcore/_core/*.pyx"), *glob.glob("fastcore/_core/*.pxd"),
            *glob.glob("fastcore/_core/includes/*.pxd"), *glob.glob("src_c/*.h"),
            *[f"{path}.{ext}" for path in COMPILED_PYTHON.values() for ext in ("py", "pxd")]]


def generated_c_is_current(path):
    """Whether fastcore/_core/NAME.c was made by this Cython from our current
    sources. cythonize() alone would also compare it with Cython's own .pxd
    files (libc, posix), which a build in an isolated environment installs
    afresh each time: every such build would regenerate and recompile all of
    it, even right after another build of the same checkout."""
    generated = f"{path}.c"
    try:
        with open(generated, encoding="utf-8", errors="replace") as f:
            first_line = f.readline()
        made = os.path.getmtime(generated)
    except OSError:
        return False
    return (first_line.strip() == f"/* Generated by Cython {cython_version} */"
            and all(os.path.getmtime(source) <= made for source in our_sources()))


def extension(name):
    path = COMPILED_PYTHON.get(name, f"fastcore/_core/{name}")
    suffix = (".py" if name in COMPILED_PYTHON else ".pyx") if cythonize and not generated_c_is_current(path) else ".c"
    return Extension(
        path.replace("/", "."),
        sources=[f"{path}{suffix}", *C_SOURCES.get(name, [])],
        include_dirs=["src_c"],
        extra_compile_args=COMPILE_ARGS,
        libraries=OPENSSL_LIBRARIES if "src_c/fc_tls.c" in C_SOURCES.get(name, []) else [],
    )


extensions = [extension(name) for name in ("parser", "stats", "buffer", "loop", "response", "stream", "realip", "connection",
                                        "framing", "gateway", "router", "limits", "filecache", "static", "upstream", "proxy",
                                        "websocket", "asgi", "tls", "balancer")]
if cythonize:
    extensions = cythonize(
        extensions,
        compiler_directives={"language_level": "3", "embedsignature": True},
        include_path=["."],
        nthreads=build_jobs(),
    )

setup(ext_modules=extensions, cmdclass={"build_ext": ParallelBuildExt})
