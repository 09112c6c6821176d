"""The allocator settings: applied only where they should be, and they stop the fault-per-buffer pattern."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from evalkit.allocator import CONTROL_VARIABLES, skip_reason, tune_allocator

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.mark.parametrize("env, reason", [
    ({"EVALKIT_MALLOC": "default"}, "EVALKIT_MALLOC=default"),
    ({"MALLOC_MMAP_THRESHOLD_": "65536"}, "MALLOC_MMAP_THRESHOLD_ is set"),
    ({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"}, "GLIBC_TUNABLES is set"),
    ({"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"}, "an allocator is preloaded"),
])
def test_user_choices_are_left_alone(env, reason):
    assert skip_reason(env) == reason
    assert tune_allocator(env) is False


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_applied_on_glibc_without_user_settings():
    assert skip_reason({}) is None


# Mallocs, writes and frees a 64 MiB block 20 times (as a forward pass does with its activation buffers;
# through libc directly, since numpy asks for huge pages on large arrays) and prints the minor page faults.
CHURN = """
import ctypes, json, resource, sys
from evalkit.allocator import tune_allocator
applied = tune_allocator() if sys.argv[1] == "tuned" else False
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    block = libc.malloc(1 << 26)
    ctypes.memset(block, 1, 1 << 26)
    libc.free(block)
print(json.dumps({"applied": applied, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def _faults(mode: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in CONTROL_VARIABLES}
    out = subprocess.run([sys.executable, "-c", CHURN, mode], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_freed_buffers_are_reused_instead_of_faulted_in_again():
    default, tuned = _faults("default"), _faults("tuned")
    assert tuned["applied"] is True
    pages = (1 << 26) // 4096
    # default: every buffer is a fresh mmap, so every round faults all of its pages in again
    assert default["faults"] >= 15 * pages
    # tuned: the first buffer's pages are reused by the next 19
    assert tuned["faults"] <= 3 * pages
