# asyncio helpers shared by the band's I/O tasks, the same on MicroPython and
# on CPython (virtual bands, where IRQ handlers run on the event loop).
import asyncio

try:
    sleep_ms = asyncio.sleep_ms  # type: ignore[attr-defined]
    from time import ticks_diff, ticks_ms  # type: ignore[attr-defined]
except (AttributeError, ImportError):  # CPython
    import time

    def sleep_ms(ms):
        return asyncio.sleep(ms / 1000)

    def ticks_ms():
        return int(time.time() * 1000)

    def ticks_diff(a, b):
        return a - b


async def wait_flag(flag, ms):
    # True when the flag was set, False after ms
    wf = getattr(asyncio, "wait_for_ms", None)
    try:
        await (wf(flag.wait(), ms) if wf is not None else asyncio.wait_for(flag.wait(), ms / 1000))
        return True
    except asyncio.TimeoutError:
        return False


def flag():
    # set from an IRQ handler: a ThreadSafeFlag on MicroPython
    try:
        return asyncio.ThreadSafeFlag()
    except AttributeError:  # CPython: the virtual board calls handlers on the loop
        return asyncio.Event()
