"""Fill a ``CacheDataset``'s cache with a thread pool that names a broken file and waits for its threads.

Why not MONAI's ``CacheDataset._fill_cache``: it runs ``multiprocessing.pool.ThreadPool`` in a ``with``
block, whose exit calls ``terminate()``, and a ``ThreadPool``'s ``terminate()`` does not join its worker
threads. When one item fails (a truncated ``.nii.gz``), the exception leaves while the other workers are
still inside nibabel/torch; the process then exits under them and the C++ runtime aborts with
``terminate called without an active exception`` (exit 134). Here a ``ThreadPoolExecutor`` cancels the
items not yet started and waits for the running ones before the error leaves, and the error names the
datalist entry and the file that failed (:func:`clara_hydra.data.load_error`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any

from clara_hydra.data import load_error


def load_items(
    dataset: Any,
    indices: Sequence[int],
    where: str,
    load_one: Callable[[int], Any] | None = None,
) -> list[Any]:
    """Run ``load_one(i)`` (default: MONAI's ``dataset._load_cache_item``) for every index, in parallel.

    Args:
        dataset: a MONAI ``CacheDataset`` (its ``data``, ``num_workers`` and ``progress`` are used).
        indices: the items to load, in order.
        where: the dataset's config key, for messages (``train.dataset``).
        load_one: what to run per index (the disk cache reads or computes and writes an item).

    Returns:
        The results, in the order of ``indices``.

    Raises:
        DataError: an item failed; names ``where``, the item's index, the broken file and the cause.
    """
    run = load_one or dataset._load_cache_item
    workers = max(int(getattr(dataset, "num_workers", 1) or 1), 1)
    results: list[Any] = [None] * len(indices)
    bar = _progress(dataset, len(indices))
    try:
        _run_all(run, indices, workers, results, bar, where, dataset)
    finally:
        if bar is not None:
            bar.close()
    return results


def _run_all(
    run: Callable[[int], Any],
    indices: Sequence[int],
    workers: int,
    results: list[Any],
    bar: Any,
    where: str,
    dataset: Any,
) -> None:
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="clara-cache") as pool:
        futures = {pool.submit(run, index): n for n, index in enumerate(indices)}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            failed = [f for f in done if f.exception() is not None]
            if failed:
                for f in pending:
                    f.cancel()
                wait(pending)  # the running items finish before the error leaves (see the module docstring)
                first = min(failed, key=lambda f: futures[f])
                index = indices[futures[first]]
                error = first.exception()
                assert error is not None
                raise load_error(where, index, dataset.data[index], error) from error
            for f in done:
                results[futures[f]] = f.result()
            if bar is not None:
                bar.update(len(done))


def _progress(dataset: Any, total: int) -> Any:
    """MONAI's "Loading dataset" progress bar when the dataset asks for one and tqdm is installed."""
    from clara_hydra.runtime.console import show_bars

    if not getattr(dataset, "progress", False) or not show_bars():  # no bar in a sweep or a log file
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc="Loading dataset")
