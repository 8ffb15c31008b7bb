"""The compiler of the model's kernels, and where their machine code is kept.

Kernels are compiled by numba the first time they run and kept on disk, so
that later processes start at once. numba checks only a kernel's own file
for changes, not the files of the kernels it calls; the cache here is
therefore keyed by the sources of every kernel module together, and editing
or upgrading any of them starts a fresh cache.

The cache lives under `$XDG_CACHE_HOME/presence-sim` (by default
`~/.cache/presence-sim`); setting `NUMBA_CACHE_DIR` puts it, and that of any
other numba code in the process, where that says instead.
"""

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numba

# Every module of sim/ that defines kernels (checked by the tests).
KERNEL_MODULES = (
    "fifo.py",
    "fanout.py",
    "metrics.py",
    "protocol/chains.py",
    "jit.py",
)


def cache_dir() -> Path:
    """The folder for the kernels of these exact sources."""
    digest = hashlib.sha256()
    here = Path(__file__).parent
    for name in KERNEL_MODULES:
        digest.update((here / name).read_bytes())
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return home / "presence-sim" / f"kernels-{digest.hexdigest()[:16]}"


if not os.environ.get("NUMBA_CACHE_DIR"):
    numba.config.CACHE_DIR = str(cache_dir())


def kernel(function: Callable) -> Callable:
    """Compile `function` to machine code on its first call, cached."""
    return numba.njit(cache=True)(function)


def kernel_without_refcounts(function: Callable) -> Callable:
    """`kernel`, compiled without numba's reference counting of arrays.

    Counting costs a pair of atomic operations per array each time arrays
    are handed from one compiled function to another, which in the tiers'
    kernels (thirteen views per tier) outweighed the work itself. Such a
    kernel must not allocate arrays, and may only take arrays its caller
    holds for the whole call.

    Limitation: `_nrt` is numba's own switch for this, not part of its
    documented interface, so a numba release could change it.
    """
    return numba.njit(cache=True, _nrt=False)(function)
