"""Keep freed tensor memory in the process instead of handing it back to the kernel after every op.

glibc's malloc serves blocks above its mmap threshold (128 KiB at start, raised dynamically up to
32 MiB) with fresh ``mmap`` calls and returns them with ``munmap`` when freed; it also trims the top of
the heap once more than 128 KiB lies free there. A PyTorch CPU forward allocates and frees the same
large activation buffers on every network evaluation, so each evaluation pays for page faults that
zero those pages again: in a quickstart run about a quarter of the CPU time went to the kernel.
Raising both thresholds lets freed buffers be reused in place. Arithmetic is unchanged (only where
buffers live); peak resident memory can rise, since freed memory is kept (the quickstart: 2.2 -> 2.8 GB,
63 -> 40 minutes); ``benchmarks/allocator.py`` measures both.

Applied by the ``evalkit`` command at start-up, on Linux with glibc only. Set ``EVALKIT_MALLOC=default``
to keep glibc's behaviour; settings given through ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``
or ``GLIBC_TUNABLES`` are left alone, as is any preloaded allocator (jemalloc, tcmalloc).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import platform

#: mallopt parameter numbers from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

#: blocks below 1 GiB come from the heap and are reused after free
MMAP_THRESHOLD = 1 << 30
#: up to 2 GiB - 1 of free memory at the heap's top is kept (mallopt takes a C int)
TRIM_THRESHOLD = (1 << 31) - 1

_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")
#: every variable that decides whether the settings apply (cleared by callers that compare both ways)
CONTROL_VARIABLES = (*_USER_SETTINGS, "EVALKIT_MALLOC")


@functools.lru_cache(maxsize=1)
def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") else None


def skip_reason(environ: dict[str, str] | None = None) -> str | None:
    """Why the allocator settings would not be applied in this environment, or None if they would."""
    env = os.environ if environ is None else environ
    if env.get("EVALKIT_MALLOC", "").strip().lower() == "default":
        return "EVALKIT_MALLOC=default"
    given = [k for k in _USER_SETTINGS if env.get(k)]
    if given:
        return f"{given[0]} is set"
    if "malloc" in env.get("LD_PRELOAD", ""):
        return "an allocator is preloaded"
    if _glibc() is None:
        return "not Linux with glibc"
    return None


def tune_allocator(environ: dict[str, str] | None = None) -> bool:
    """Raise glibc's mmap and trim thresholds for this process; True if both settings were taken."""
    if skip_reason(environ) is not None:
        return False
    libc = _glibc()
    assert libc is not None
    mmap_ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    trim_ok = libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    return mmap_ok and trim_ok
