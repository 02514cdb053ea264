"""Shared by the scripts in tests/fw_mp: run on the real MicroPython AND on CPython.

Each script prints lines; PASS/FAIL lines are checks, other lines are output that
the pytest side compares between the two runtimes. Lines starting with "MP " are
only printed where gc.mem_alloc exists (MicroPython).
"""

import sys

FAILS = [0]


def check(name, cond, detail=""):
    if cond:
        print("PASS " + name)
    else:
        FAILS[0] += 1
        print("FAIL " + name + ((": " + str(detail)) if detail else ""))


def has_mem_alloc():
    import gc
    return hasattr(gc, "mem_alloc")


def alloc_of(fn, n):
    """Bytes the heap grew by while calling fn() n times (GC disabled); None off MicroPython."""
    import gc
    if not hasattr(gc, "mem_alloc"):
        return None
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    for _ in range(n):
        fn()
    after = gc.mem_alloc()
    gc.enable()
    return after - before


def finish():
    print("DONE fails=%d" % FAILS[0])
    sys.exit(1 if FAILS[0] else 0)
