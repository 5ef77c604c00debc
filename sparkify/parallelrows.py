"""COPY rows rendered by several processes: the local COPY's parse-and-convert, in parallel.

One Python process turns ~160k JSON lines a second into COPY text, well short of what the
server's COPY takes (~400–550k rows/s). Worker processes each render whole source objects
and pass the rows on in chunks of about a megabyte through a bounded queue, so memory
stays flat whatever the file sizes; the calling process only forwards the chunks to COPY
and keeps the books. Each worker is a fork of the caller and so starts with its JsonCopy,
columns and converters as they are (generated row functions cannot be pickled).

The rows, errors and per-object counts are those of JsonCopy.rows; only the order of rows
from different objects differs, which COPY and the transforms (they deduplicate by key
with a fixed order) do not depend on. MAXERROR counts across all workers.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
from collections.abc import Iterator

from .jsoncopy import CopyResult, JsonCopy, LoadError, TooManyErrors
from .sources import SourceObject

CHUNK_BYTES = 1 << 20
QUEUE_CHUNKS_PER_WORKER = 4   # bounds the rows in flight: about 4 MB per worker
MIN_TOTAL_BYTES = 8 << 20     # below this much data in all, forking costs more than it saves
MIN_AVERAGE_BYTES = 256 << 10  # and for small objects (one song each) the messages would
WAIT_S = 1.0                  # how often the caller looks whether a worker died


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def worker_count(objects: list[SourceObject]) -> int:
    """How many workers a set of objects is worth: one per core, when there is enough data
    and every object is a local file (S3 bodies stream through the caller's client, which
    a forked process must not share)."""
    cores = usable_cores()
    if cores < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    total = sum(obj.size for obj in objects)
    if any(obj.opener is not None for obj in objects) or total < MIN_TOTAL_BYTES \
            or total < MIN_AVERAGE_BYTES * len(objects):
        return 1
    return min(cores, len(objects))


def rows(copier: JsonCopy, objects: list[SourceObject], workers: int) -> Iterator[bytes]:
    """Chunks of COPY text for every loadable record of the objects; the books go to
    copier.result as JsonCopy.rows keeps them."""
    context = multiprocessing.get_context("fork")
    tasks = context.SimpleQueue()
    results = context.Queue(maxsize=QUEUE_CHUNKS_PER_WORKER * workers)
    processes = [context.Process(target=_work, args=(copier, objects, tasks, results), daemon=True)
                 for _ in range(workers)]
    for process in processes:
        process.start()
    for index in range(len(objects)):  # after the start: a full pipe would block with no reader
        tasks.put(index)
    for _ in range(workers):
        tasks.put(None)
    result = copier.result
    errors_by_object: dict[int, list[LoadError]] = {}
    running = workers
    try:
        while running:
            try:
                message = results.get(timeout=WAIT_S)
            except queue.Empty:
                dead = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"a COPY worker process died (exit code {dead[0]})") from None
                continue
            kind = message[0]
            if kind == "rows":
                result.rows += message[2]
                yield message[1]
            elif kind == "object":
                _, index, loaded, rejected, errors, unread = message
                result.objects += 1
                result.per_object[objects[index].url] = (loaded, rejected)
                if unread:
                    result.unread.add(objects[index].url)
                errors_by_object[index] = errors
                result.rejected_count += rejected
                if rejected and result.rejected_count > copier.options.max_errors:
                    result.errors = _in_object_order(errors_by_object)
                    raise TooManyErrors(copier.table, result.errors, copier.options.max_errors)
            elif kind == "failed":
                raise message[1]
            else:  # "done"
                running -= 1
        result.errors = _in_object_order(errors_by_object)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join()
        results.close()


def _in_object_order(errors_by_object: dict[int, list[LoadError]]) -> list[LoadError]:
    return [error for index in sorted(errors_by_object) for error in errors_by_object[index]]


def _work(copier: JsonCopy, objects: list[SourceObject], tasks, results) -> None:
    """A worker: renders the objects it takes from the queue until it takes None."""
    # MAXERROR is the caller's to count over all workers; a worker reports and goes on.
    copier.options = _unlimited(copier.options)
    try:
        while (index := tasks.get()) is not None:
            copier.result = CopyResult(copier.table)
            chunk, size, count = [], 0, 0
            for line in copier.rows([objects[index]]):
                chunk.append(line)
                size += len(line)
                count += 1
                if size >= CHUNK_BYTES:
                    results.put(("rows", b"".join(chunk), count))
                    chunk, size, count = [], 0, 0
            if chunk:
                results.put(("rows", b"".join(chunk), count))
            url = objects[index].url
            loaded, rejected = copier.result.per_object[url]
            results.put(("object", index, loaded, rejected, copier.result.errors, url in copier.result.unread))
    except BaseException as exc:  # handed to the caller, who raises it as the serial path would
        results.put(("failed", exc if _picklable(exc) else RuntimeError(f"{type(exc).__name__}: {exc}")))
    results.put(("done",))
    results.close()
    results.join_thread()


def _unlimited(options):
    from dataclasses import replace

    return replace(options, max_errors=1 << 62)


def _picklable(exc: BaseException) -> bool:
    import pickle

    try:
        pickle.dumps(exc)
    except Exception:
        return False
    return True
