"""The cycle collector tuned for a process on the hot path: the start-up heap frozen, young collections rarer.

CPython frees almost every object by reference counting; its collector exists for reference cycles, and by
default it scans the youngest generation every 700 allocations not yet freed and the oldest whenever it grew
by a quarter. Under a crowd the door keeps a thousand requests in flight, each with objects that live across
awaits (its coroutine, futures, dicts): they survive young collections, are promoted, and keep the collector
scanning a heap of modules, the FastAPI app and SQLAlchemy's metadata. Sampled with py-spy (`--native`) under
the ingest load, the collector took a fifth of an API process's main thread.

`settle()` runs once start-up is done: `gc.freeze()` moves every object that exists then into a generation
the collector never scans (they live as long as the process anyway), and the thresholds make the young
collections ~140 times rarer. Cycles are still collected: the young ones within `YOUNG` allocations, the
older ones in the rare full collections. The ingest benchmark measures the difference
(docs/benchmarks/ingest-compare.md); a long run's resident memory stays flat with it.
"""

from __future__ import annotations

import gc

YOUNG = 100_000  # allocations not yet freed between two collections of the youngest generation (default 700)
MIDDLE = 50  # young collections between two of the middle generation (default 10)
OLD = 100  # middle collections before a full one is considered (default 10)


def settle() -> None:
    """Freeze the heap built so far (never scanned again) and space the collections out."""
    gc.collect()  # start-up's garbage, gone before the rest is frozen
    gc.freeze()
    gc.set_threshold(YOUNG, MIDDLE, OLD)
