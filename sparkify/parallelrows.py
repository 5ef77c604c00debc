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

import ctypes
import multiprocessing
import os
import queue
import signal
import sys
from collections.abc import Generator

from .jsoncopy import JsonCopy
from .loads import CopyResult, LoadError, TooManyErrors, rejections_that_fail
from .sources import SourceObject

CHUNK_BYTES = 1 << 20
QUEUE_CHUNKS_PER_WORKER = 4   # bounds the rows in flight: about 4 MB per worker
MIN_TOTAL_BYTES = 8 << 20     # below this much data in all, forking costs more than it saves
MIN_AVERAGE_BYTES = 256 << 10  # and for small objects (one song each) the messages would
WAIT_S = 1.0                  # how often the caller looks whether a worker died (and back)
PR_SET_PDEATHSIG = 1          # Linux prctl(2): the signal a process gets when its parent dies


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


def rows(copier: JsonCopy, objects: list[SourceObject], workers: int,
         inherited_fds: tuple[int, ...] = ()) -> Generator[bytes, None, None]:
    """Chunks of COPY text for every loadable record of the objects; the books go to
    copier.result as JsonCopy.rows keeps them. inherited_fds are the caller's open files a
    worker must not keep (its database connection): each worker closes its copies."""
    context = multiprocessing.get_context("fork")
    tasks = context.SimpleQueue()
    results = context.Queue(maxsize=QUEUE_CHUNKS_PER_WORKER * workers)
    processes = [context.Process(target=_work, args=(copier, objects, tasks, results, os.getpid(), inherited_fds),
                                 daemon=True)
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
                result.bytes_read += message[3]
                yield message[1]
            elif kind == "object":
                _, index, loaded, rejected, errors, unread, shape, unreported_bytes = message
                result.objects += 1
                result.bytes_read += unreported_bytes
                if shape is not None:
                    result.shapes[objects[index].url] = shape
                result.per_object[objects[index].url] = (loaded, rejected)
                if unread:
                    result.unread.add(objects[index].url)
                errors_by_object[index] = errors
                result.rejected_count += rejected
                if rejected and result.rejected_count >= rejections_that_fail(copier.options.max_errors):
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


def _work(copier: JsonCopy, objects: list[SourceObject], tasks, results, parent: int,
          inherited_fds: tuple[int, ...]) -> None:
    """A worker: renders the objects it takes from the queue until it takes None."""
    _bind_to_parent(parent, inherited_fds)
    # MAXERROR is the caller's to count over all workers; a worker reports and goes on.
    copier.options = _unlimited(copier.options)

    def put(message) -> None:
        # Bounded waits, so a worker whose caller died (and reads no more) notices and ends.
        while True:
            try:
                results.put(message, timeout=WAIT_S)
                return
            except queue.Full:
                if os.getppid() != parent:
                    os._exit(1)

    try:
        while (index := tasks.get()) is not None:
            copier.result = CopyResult(copier.table)
            chunk, size, count, reported = [], 0, 0, 0
            for line in copier.rows([objects[index]]):
                chunk.append(line)
                size += len(line)
                count += 1
                if size >= CHUNK_BYTES:
                    put(("rows", b"".join(chunk), count, copier.result.bytes_read - reported))
                    reported = copier.result.bytes_read
                    chunk, size, count = [], 0, 0
            if chunk:
                put(("rows", b"".join(chunk), count, copier.result.bytes_read - reported))
                reported = copier.result.bytes_read
            url = objects[index].url
            loaded, rejected = copier.result.per_object[url]
            put(("object", index, loaded, rejected, copier.result.errors, url in copier.result.unread,
                 copier.result.shapes.get(url), copier.result.bytes_read - reported))
    except BaseException as exc:  # handed to the caller, who raises it as the serial path would
        put(("failed", exc if _picklable(exc) else RuntimeError(f"{type(exc).__name__}: {exc}")))
    put(("done",))
    results.close()
    results.join_thread()


def _bind_to_parent(parent: int, inherited_fds: tuple[int, ...]) -> None:
    """Makes a worker end with its caller, however the caller ends, and hold nothing of its.

    A worker killed with its caller (SIGKILL) would otherwise live on, blocked on a full
    queue, and keep the caller's database connection open (the socket is inherited by the
    fork): the server would then keep the killed run's COPY, and its load lock, alive.
    """
    for fd in inherited_fds:
        try:
            os.close(fd)
        except OSError:
            pass
    # The caller stops workers itself (terminate): Ctrl-C, which the terminal sends to the
    # whole process group, and the caller's SIGTERM handler are the caller's business.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the kernel kills us when the caller dies
        except (OSError, AttributeError):
            pass  # the bounded waits in put() still notice
    if os.getppid() != parent:  # the caller died before the line above took effect
        os._exit(1)


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
