"""Fast-CPU (and GPU) runtime setup: allocator, threads, device, autocast.

On CPU the CNN's inference is limited by glibc malloc handing every large
per-layer buffer back to the kernel (``mmap``/``munmap``), which costs page
faults on every batch. :func:`tune_allocator` raises the mmap and trim
thresholds to 1 GiB so those buffers are reused; it is the in-process
equivalent of ``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1073741824:
glibc.malloc.trim_threshold=1073741824`` (or tcmalloc by ``LD_PRELOAD``).
Call it once at start-up, before the first large allocation.

Channels-last memory formats only exist for 2-D/3-D convolutions; for this
1-D network they are irrelevant.
"""

from __future__ import annotations

import contextlib
import ctypes
import platform

import torch

__all__ = [
    "BF16_CPU_FLAGS",
    "tune_allocator",
    "share_main_arena",
    "resolve_device",
    "cpu_flags",
    "best_autocast_dtype",
    "inference_context",
]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_ONE_GIB = 1 << 30

_allocator_tuned: bool | None = None


def tune_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds to 1 GiB (once per process).

    Returns
    -------
    bool
        True when both ``mallopt`` calls succeeded; False on a non-glibc C
        library, where nothing is changed. Later calls return the first
        call's result without calling ``mallopt`` again.
    """
    global _allocator_tuned
    if _allocator_tuned is None:
        _allocator_tuned = _mallopt_thresholds()
    return _allocator_tuned


def _mallopt_thresholds() -> bool:
    libc = _glibc()
    if libc is None:
        return False
    ok_mmap = libc.mallopt(_M_MMAP_THRESHOLD, _ONE_GIB) == 1
    ok_trim = libc.mallopt(_M_TRIM_THRESHOLD, _ONE_GIB) == 1
    return ok_mmap and ok_trim


def share_main_arena() -> bool:
    """Make threads that allocate for the first time from now on use glibc's
    main arena (``mallopt(M_ARENA_MAX, 1)``, as ``MALLOC_ARENA_MAX=1``).

    Threads otherwise get arenas of their own, which hand large buffers
    back to the kernel whatever :func:`tune_allocator` set. A Dask worker
    runs its tasks in such threads: scoring 8,192 spectra there took 384,000
    page faults and ran ≈20 % slower per CPU second than in the main thread;
    with ``MALLOC_ARENA_MAX=1`` in its environment, 4,000–8,000 faults and
    within 5 %. Called in a running process it reaches only the threads that
    have not allocated yet (there, 160,000–200,000 faults): the environment
    variable, set before the process starts, reaches them all.

    Returns
    -------
    bool
        True when ``mallopt`` succeeded; False on a non-glibc C library.
    """
    libc = _glibc()
    return libc is not None and libc.mallopt(_M_ARENA_MAX, 1) == 1


def _glibc():
    """glibc's ``libc.so.6`` with ``mallopt`` declared, or None elsewhere."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return libc


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``'auto'`` means CUDA when available, else CPU; anything else is passed to torch."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags() -> frozenset[str]:
    """The CPU's instruction-set flags from ``/proc/cpuinfo`` (empty where unreadable).

    Returns
    -------
    frozenset of str
        E.g. ``{'avx2', 'avx512f', 'avx512_bf16', 'amx_bf16', ...}``.
    """
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def _cpu_has_bf16_units() -> bool:
    return not cpu_flags().isdisjoint(BF16_CPU_FLAGS)


def best_autocast_dtype(device: str | torch.device = "cpu") -> torch.dtype | None:
    """The reduced-precision dtype worth autocasting to on ``device``, or None.

    CPU: bfloat16 when the CPU has bf16 matrix instructions (AVX512-BF16 or
    AMX), else None (emulated bf16 is slower than fp32). CUDA: bfloat16 where
    supported, else float16.
    """
    device = resolve_device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and _cpu_has_bf16_units():
        return torch.bfloat16
    return None


def inference_context(
    device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> contextlib.ExitStack:
    """``torch.inference_mode()`` plus autocast to ``dtype`` when one is given.

    Parameters
    ----------
    device : str or torch.device
        Device the model runs on.
    dtype : torch.dtype, optional
        Autocast dtype (see :func:`best_autocast_dtype`); None runs in fp32.

    Returns
    -------
    contextlib.ExitStack
        Use as ``with inference_context(dev, dtype): ...``.
    """
    device = resolve_device(device)
    stack = contextlib.ExitStack()
    stack.enter_context(torch.inference_mode())
    if dtype is not None:
        stack.enter_context(torch.autocast(device_type=device.type, dtype=dtype))
    return stack
