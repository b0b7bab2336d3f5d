"""Transform errors raised inside the engines: one named :class:`~clara_hydra.errors.DataError`, logged once.

A transform that fails while the trainer runs (a random crop larger than the image, a bad key) reaches the
task as ``RuntimeError: Caught RuntimeError in DataLoader worker process 0`` whose text is the worker's
traceback, after ignite and MONAI logged it twice each. :func:`engine_data_error` turns it into one message
naming the transform's config key, its class and the root cause; :func:`quiet_engine_errors` keeps the
engines from logging it beforehand, and the same for Ctrl-C (the task reports both, and
``CLARA_HYDRA_FULL_ERROR=1`` shows everything).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig

from clara_hydra.errors import FULL_ERROR_ENV, DataError, shorten, with_fix
from clara_hydra.keywords import Emitted

_TRANSFORM = re.compile(r"applying transform <([\w.]+) object")
_ERROR_LINE = re.compile(r"^(\w+(?:Error|Exception)): (.+)$", re.MULTILINE)
_WORKER = "DataLoader worker process"


def _chain(exc: BaseException) -> list[BaseException]:
    links, seen = [], set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        links.append(link)
        link = link.__cause__ or link.__context__
    return links


def _is_transform_error(exc: BaseException) -> bool:
    return any(_TRANSFORM.search(str(link)) for link in _chain(exc))


def engine_data_error(
    exc: BaseException, cfg: DictConfig, datasets: Mapping[str, Any] | None = None
) -> DataError | None:
    """A :class:`DataError` for a transform that failed inside an engine, or ``None`` for other errors.

    Args:
        exc: what ``engine.run()`` raised.
        cfg: the composed config (to find the transform's config key from its class).
        datasets: ``{config key: dataset}``; when a loader failed (a dataset that is not cached, so the file
            is read inside the engine), their datalists are searched for the file that cannot be read.

    Returns:
        ``DataError("train.pre_transforms.rand_crop_by_pos_neg_labeld (RandCropByPosNegLabeld) failed: ...")``.
    """
    links = _chain(exc)
    text = "\n".join(str(link) for link in links)
    names = _TRANSFORM.findall(text)
    if not names:
        return None
    cls = names[-1].rsplit(".", 1)[-1]  # the innermost transform (a Compose wraps its members)
    causes = _ERROR_LINE.findall(text)  # a worker's traceback arrives as text: its first error line is the cause
    real = [c for c in causes if not c[1].startswith(("applying transform", "Caught "))]
    if real:
        cause = f"{real[0][0]}: {real[0][1]}"
    else:
        root = links[-1]
        cause = f"{type(root).__name__}: {root}"
    if cls.startswith("LoadImage") and datasets:
        found = _broken_entry(datasets)
        if found is not None:
            path, index, files = found
            return DataError(
                with_fix(
                    f"{path}: cannot read {', '.join(files)} (datalist entry {index}) in {cls}: {shorten(cause, 300)}",
                    "the file is truncated or corrupt: copy it again, or remove its entry from the datalist",
                )
            )
    keys = transform_keys(cfg, cls)
    where = f"{' or '.join(keys)} ({cls})" if keys else cls
    fix = f"check the arguments of {keys[0]}" if keys else f"check the arguments of the {cls} transform"
    if "larger than the image size" in cause and keys:
        fix = f"set {keys[0]}.spatial_size (or the ROI) to at most the image size, or resample the images"
    return DataError(with_fix(f"{where} failed: {shorten(cause, 400)}", fix))


def _broken_entry(datasets: Mapping[str, Any]) -> tuple[str, int, list[str]] | None:
    """The first datalist entry (dataset key, index, files) with a file that cannot be read, on the error path."""
    from clara_hydra.data import broken_files

    for path, dataset in datasets.items():
        for index, item in enumerate(getattr(dataset, "data", None) or []):
            files = broken_files(item)
            if files:
                return path, index, files
    return None


def transform_keys(cfg: DictConfig, cls: str) -> list[str]:
    """Config keys of the transforms whose ``_target_`` names the class ``cls`` (``train.pre_transforms.x``)."""
    found: list[str] = []

    def walk(node: Any, path: str) -> None:
        if not isinstance(node, DictConfig) or len(found) >= 3:
            return
        target = node.get(Emitted.TARGET) if Emitted.TARGET in node else None
        if isinstance(target, str) and target.rsplit(".", 1)[-1] == cls:
            found.append(path)
            return
        for key in node:
            try:
                child = node._get_node(key)
            except Exception:
                continue
            walk(child, f"{path}.{key!s}" if path else str(key))

    walk(cfg, "")
    return found


class _DropDataErrors(logging.Filter):
    """Drops an engine's ERROR records about a failed transform or Ctrl-C: the task reports them once, compactly."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            return True
        # ignite logs "terminating due to exception" inside its except block without exc_info: ask sys for it
        exc = record.exc_info[1] if record.exc_info else sys.exc_info()[1]
        if exc is not None:
            return not (isinstance(exc, KeyboardInterrupt) or _is_transform_error(exc))
        message = record.getMessage()
        return not (_WORKER in message or "applying transform" in message)


def quiet_engine_errors(*engines: Any) -> None:
    """Attach :class:`_DropDataErrors` to the engines' loggers and their exception handlers' loggers.

    Nothing is dropped with ``CLARA_HYDRA_FULL_ERROR=1``.
    """
    if os.environ.get(FULL_ERROR_ENV):
        return
    from ignite.engine import Events

    for engine in (e for e in engines if e is not None):
        engine.logger.addFilter(_DropDataErrors())
        for handler in engine._event_handlers.get(Events.EXCEPTION_RAISED, []):
            owner_logger = getattr(getattr(handler[0], "__self__", None), "logger", None)
            if isinstance(owner_logger, logging.Logger):  # MONAI StatsHandler's own logger
                owner_logger.addFilter(_DropDataErrors())
