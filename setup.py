"""Build of fastcore's compiled core: Cython modules in fastcore/_core over
plain C in src_c/. Metadata lives in pyproject.toml.

A build from source (an sdist, or `pip install .` from a checkout) compiles
the extensions in parallel, one per CPU, and without debug information
(-g0 overrides the -g that Python's own flags bring): half the compile time,
a fifth of the size. FASTCORE_DEBUG_BUILD=1 gives -O0 -g for a debugger.
The released wheel is built and checked by .ci/wheel-check."""
import os

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

try:
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
}


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


def extension(name):
    suffix = ".pyx" if cythonize else ".c"
    return Extension(
        f"fastcore._core.{name}",
        sources=[f"fastcore/_core/{name}{suffix}", *C_SOURCES.get(name, [])],
        include_dirs=["src_c"],
        extra_compile_args=COMPILE_ARGS,
    )


extensions = [extension(name) for name in ("parser", "stats", "buffer", "loop", "response", "stream", "connection", "gateway",
                                        "router", "filecache", "static", "upstream", "proxy")]
if cythonize:
    extensions = cythonize(
        extensions,
        compiler_directives={"language_level": "3", "embedsignature": True},
        include_path=["."],
        nthreads=build_jobs(),
    )

setup(ext_modules=extensions, cmdclass={"build_ext": ParallelBuildExt})
