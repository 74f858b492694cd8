"""CPython's cyclic garbage collector, set for fleetprobe's long-running processes
(``python scheduler.py`` and ``taskiq worker worker:broker``).

With CPython's default thresholds (700, 10, 10) a saturated worker spent more time
collecting than probing: a probe keeps ~200 container objects alive for the ~50-100 ms it
is in flight (its task, frames, futures, the request and the response), so every young
collection promoted the probes in flight, and the oldest generation, which holds
everything the process keeps (start-up, the schedule's mirror, the per-device request
caches), was walked again every quarter of a second: 49 full collections in a 15 s run of
20,000 probes, 7.3 s of CPU (docs/performance.md, "The garbage collector").

:func:`tune` raises the thresholds (setting ``GC_THRESHOLDS``, by default 10000,50,100):
a young collection after 10,000 net new containers instead of 700, an older one after
50 of those, a full one after 100 of those (and, as always, only once a quarter more
objects survived than the oldest generation holds). :func:`freeze_start_up`, called once
a process has started, moves what start-up built into the permanent generation, which no
collection walks again (``gc.freeze``: also what keeps a forked child's pages shared).

Cycles are still collected: only less often, in larger batches. Refcounting frees
everything else at once, as before; the probe path keeps itself free of cycles
(``jobs.probe.run``), so what the collector finds is rare.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)


def tune(thresholds: tuple[int, int, int]) -> None:
    """Set the collector's three thresholds (``Settings.gc_thresholds``)."""
    gc.set_threshold(*thresholds)


def freeze_start_up() -> None:
    """Collect once, then leave everything alive now out of every later collection (what
    start-up built lives as long as the process). Logs what it froze, and how long it
    took, and the thresholds in force."""
    started = time.perf_counter()
    found = gc.collect()
    gc.freeze()
    log.info(
        "start-up objects frozen objects=%d collected=%d ms=%.0f gc_thresholds=%s",
        gc.get_freeze_count(),
        found,
        (time.perf_counter() - started) * 1000,
        ",".join(map(str, gc.get_threshold())),
    )
