"""Build of fastcore's compiled core: Cython modules in fastcore/_core over
plain C in src_c/. Metadata lives in pyproject.toml."""
import os

from setuptools import Extension, setup

try:
    from Cython.Build import cythonize
except ImportError:  # building from an sdist that ships the generated C
    cythonize = None

# -O3 and no -march: the wheel runs on any x86-64; the C parser picks its
# SIMD level (AVX2/SSE2/scalar) at run time from the CPU's features.
COMPILE_ARGS = ["-O3", "-std=c11", "-fno-strict-aliasing"]
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


def extension(name):
    suffix = ".pyx" if cythonize else ".c"
    return Extension(
        f"fastcore._core.{name}",
        sources=[f"fastcore/_core/{name}{suffix}", *C_SOURCES.get(name, [])],
        include_dirs=["src_c"],
        extra_compile_args=COMPILE_ARGS,
    )


extensions = [extension(name) for name in ("parser", "stats", "buffer", "loop", "response", "stream", "connection", "gateway",
                                        "router", "filecache", "static", "upstream", "proxy", "asgi")]
if cythonize:
    extensions = cythonize(
        extensions,
        compiler_directives={"language_level": "3", "embedsignature": True},
        include_path=["."],
    )

setup(ext_modules=extensions)
