"""The open-file cache in-process: confinement, revalidation, bounds."""
import errno
import os
import types

import pytest

from fastcore._core import filecache
from fastcore._core.filecache import FileCache, Root


def settings(**overrides):
    values = dict(static_cache_entries=100, static_cache_bytes=1 << 20, static_cache_fds=10,
                  static_inline_max=64 * 1024, static_revalidate=1.0, etag_inode=True)
    values.update(overrides)
    return types.SimpleNamespace(**values)


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    (root / "small.txt").write_bytes(b"s" * 100)
    (root / "big.bin").write_bytes(b"b" * 200_000)
    (root / "sub").mkdir()
    (root / "sub" / "inner.txt").write_bytes(b"inner")
    (tmp_path / "secret.txt").write_bytes(b"secret")
    return root


def open_fds(under):
    """This process's descriptors open on files under `under` (others, such
    as sockets a previous test left to the garbage collector, may come and go)."""
    count = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith(str(under) + "/"):
                count += 1
        except OSError:
            pass
    return count


@pytest.fixture(params=["openat2", "fallback"])
def confinement(request):
    filecache.force_fallback(request.param == "fallback")
    yield request.param
    filecache.force_fallback(False)


def test_filecache_small_files_in_memory_large_ones_keep_a_descriptor(site):
    cache = FileCache(settings())
    root = Root(str(site), True)
    size, etag, in_memory = cache.find(root, b"small.txt", 0.0)
    assert (size, in_memory) == (100, True)
    st = os.stat(site / "small.txt")
    assert etag == f'"{st.st_size:x}-{st.st_mtime_ns:x}-{st.st_ino:x}"'.encode()
    assert cache.find(root, b"big.bin", 0.0)[1:] == (cache.find(root, b"big.bin", 0.1)[1], False)
    assert cache.stats()["descriptors"] == 1 and cache.stats()["content_bytes"] == 100


def test_filecache_errors_say_why(site, confinement):
    cache = FileCache(settings())
    root = Root(str(site), True)
    assert cache.find(root, b"missing", 0.0) is None and cache.error == errno.ENOENT
    assert cache.find(root, b"sub", 0.0) is None and cache.error == errno.EISDIR
    assert cache.find(root, b"small.txt/x", 0.0) is None and cache.error == errno.ENOTDIR
    os.symlink(site.parent / "secret.txt", site / "escape")
    assert cache.find(root, b"escape", 0.0) is None and cache.error == errno.EXDEV
    os.symlink("sub/inner.txt", site / "inside")
    assert cache.find(root, b"inside", 0.0)[0] == 5
    os.symlink(site.parent, site / "updir")
    assert cache.find(root, b"updir/secret.txt", 0.0) is None and cache.error == errno.EXDEV
    os.mkfifo(site / "fifo")
    assert cache.find(root, b"fifo", 0.0) is None and cache.error == errno.EACCES


def test_filecache_follows_links_outside_only_when_allowed(site):
    os.symlink(site.parent / "secret.txt", site / "escape")
    assert FileCache(settings()).find(Root(str(site), False), b"escape", 0.0)[0] == 6


def test_filecache_revalidates_once_per_window(site):
    cache = FileCache(settings(static_revalidate=1.0))
    root = Root(str(site), True)
    first = cache.find(root, b"small.txt", 10.0)
    (site / "small.txt").write_bytes(b"changed, and longer than before" * 10)
    assert cache.find(root, b"small.txt", 10.5) == first  # inside the window: no stat
    fresh = cache.find(root, b"small.txt", 11.0)
    assert fresh[0] == 310 and fresh[1] != first[1]


def test_filecache_sees_a_rename_over_and_a_deletion(site):
    cache = FileCache(settings(static_revalidate=1.0))
    root = Root(str(site), True)
    before = cache.find(root, b"big.bin", 0.0)
    (site / "big.tmp").write_bytes(b"n" * 200_000)  # same size
    os.rename(site / "big.tmp", site / "big.bin")
    after = cache.find(root, b"big.bin", 1.0)
    assert after[0] == before[0] and after[1] != before[1]  # new inode, new ETag
    os.unlink(site / "big.bin")
    assert cache.find(root, b"big.bin", 2.0) is None and cache.error == errno.ENOENT
    assert cache.stats()["descriptors"] == 0


def test_filecache_zero_revalidate_stats_every_time(site):
    cache = FileCache(settings(static_revalidate=0.0))
    root = Root(str(site), True)
    cache.find(root, b"small.txt", 5.0)
    (site / "small.txt").write_bytes(b"x")
    assert cache.find(root, b"small.txt", 5.0)[0] == 1


def test_filecache_bounds_entries_bytes_and_descriptors(site):
    for i in range(20):
        (site / f"f{i}.txt").write_bytes(b"x" * 1000)
        (site / f"g{i}.bin").write_bytes(b"y" * 100_000)
    cache = FileCache(settings(static_cache_entries=8, static_cache_bytes=5000, static_cache_fds=3))
    root = Root(str(site), True)
    fds = open_fds(site)
    for i in range(20):
        assert cache.find(root, f"f{i}.txt".encode(), 0.0) is not None
        assert cache.find(root, f"g{i}.bin".encode(), 0.0) is not None
        stats = cache.stats()
        assert stats["entries"] <= 8 and stats["content_bytes"] <= 5000 and stats["descriptors"] <= 3
    assert open_fds(site) - fds <= 3  # evicted entries closed their descriptors
    # least recently used goes first: the newest files are still cached
    hits = cache.stats()["hits"]
    cache.find(root, b"g19.bin", 0.0)
    cache.find(root, b"f19.txt", 0.0)
    assert cache.stats()["hits"] == hits + 2
    misses = cache.stats()["misses"]
    cache.find(root, b"f0.txt", 0.0)
    assert cache.stats()["misses"] == misses + 1
    cache.clear()
    assert open_fds(site) == fds == 0


def test_filecache_precompressed_variant_is_its_own_entry(site):
    (site / "small.txt.gz").write_bytes(b"gzip bytes")
    cache = FileCache(settings())
    root = Root(str(site), True)
    plain = cache.find(root, b"small.txt", 0.0)
    gz = cache.find(root, b"small.txt", 0.0, 1)  # FC_ENC_GZIP
    assert plain[0] == 100 and gz[0] == 10 and gz[1] != plain[1]
    assert cache.find(root, b"small.txt", 0.0, 2) is None  # no .br


def test_filecache_etag_without_the_inode(site):
    # two copies of a file with the same size and mtime (two machines behind
    # a balancer) get the same tag once the inode is left out
    info = os.stat(site / "small.txt")
    (site / "copy.txt").write_bytes((site / "small.txt").read_bytes())
    os.utime(site / "copy.txt", ns=(info.st_atime_ns, info.st_mtime_ns))
    root = Root(str(site), True)
    with_inode = FileCache(settings())
    assert with_inode.find(root, b"small.txt", 0.0)[1] != with_inode.find(root, b"copy.txt", 0.0)[1]
    without = FileCache(settings(etag_inode=False))
    tag = without.find(root, b"small.txt", 0.0)[1]
    assert tag == f'"{info.st_size:x}-{info.st_mtime_ns:x}"'.encode()
    assert without.find(root, b"copy.txt", 0.0)[1] == tag
