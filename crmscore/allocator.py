"""How the C allocator hands memory back: kept for reuse by the synthetic generator.

The generator allocates and frees arrays of tens of megabytes every simulated month (a month of a
group's postings, its sort orders, its running balances). glibc's ``malloc`` gives such blocks
back to the kernel as soon as they are freed, so the next month's arrays fault their pages in
again, zero-filled by the kernel: a fifth of the generator's CPU time was spent in the kernel
doing that. Keeping freed memory for the next array removes most of it (a 250,000-customer group:
22.3 s of system time down to 9.0 s, 116 s down to 105 s wall). A process's own peak does not
grow, since the memory kept is memory it held a moment before (2.58 GB either way for the largest
worker of a 500,000-customer bank). The workers together hold more at once: the 1M chain's
process tree peaked at 6.57 GB against 6.00 GB.

Only the generator's processes ask for it (``crmscore generate`` and its workers). ``crmscore
train churn`` on a 1M bank measured no gain (177.6 s with it, 174.2 s without; 33.6 s of system
time against 28.6 s), and DuckDB and pyarrow have allocators of their own.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

#: ``mallopt`` parameters (glibc's ``malloc.h``).
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
#: Freed memory kept at the top of the heap before any is returned to the kernel.
TRIM_THRESHOLD = 1 << 30
#: Extra memory asked of the kernel whenever the heap grows, so it grows in a few large steps.
TOP_PAD = 256 << 20
#: Blocks from this size on are mapped on their own and returned when freed: glibc's largest
#: setting (32 MB on 64 bits). Pinning it also stops glibc from raising it on its own, which
#: would lower the trim threshold set here.
MMAP_THRESHOLD = 32 << 20


def keep_freed_memory() -> bool:
    """Tell glibc's allocator to keep freed memory for reuse (see the module docstring); whether
    it applied (False off glibc, e.g. on macOS, where nothing changes)."""
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    settings = (
        (_M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        (_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (_M_TOP_PAD, TOP_PAD),
    )
    return all(libc.mallopt(parameter, value) == 1 for parameter, value in settings)
