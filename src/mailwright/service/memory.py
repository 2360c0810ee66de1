"""How the server process gets memory from the C allocator (glibc malloc).

glibc serves a large allocation with mmap and unmaps it when freed, but after the
first such free it raises its threshold to that size (the dynamic mmap threshold,
up to 32 MiB): later allocations of that size come from a heap arena and stay with
it once freed. An argon2 password check (auth/passwords.py) allocates its memory
cost (19 MiB by default) in whichever thread of the pool runs it, so every pool
thread's arena ended up holding that much for good: about 115 MB after a few
concurrent logins on a 2-core machine, more than 20,000 idle connections take.
Setting the threshold turns the dynamic one off (mallopt(3) M_MMAP_THRESHOLD):
allocations from LARGE up are mapped when made and returned when freed (a large
message's buffers too), at the price of zero-filled pages for each.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger("mailwright.service")

M_MMAP_THRESHOLD = -3          # <malloc.h>
LARGE = 1 << 20


def return_large_allocations() -> bool:
    """Make large allocations go back to the system when freed; False where the C
    library has no such setting (not glibc)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if mallopt(M_MMAP_THRESHOLD, LARGE) != 1:
        log.debug("mallopt(M_MMAP_THRESHOLD) refused; large allocations stay in arenas")
        return False
    return True
