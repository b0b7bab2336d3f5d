"""Clara/MSD datalists: the ``data_list_file_path`` / ``data_file_base_dir`` / ``data_list_key`` of a 4.x dataset.

The converter emits a dataset's datalist as
``data: {_target_: clara_hydra.data.load_datalist, data_list_file_path: ..., data_file_base_dir: ...,
data_list_key: ...}``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from clara_hydra.errors import DataError, shorten, with_fix

# Entries whose values are file names relative to the base folder (as in MONAI's load_decathlon_datalist).
_FILE_KEYS = ("image", "label")
_MAX_LISTED = 5
_TRANSFORM = re.compile(r"applying transform <([\w.]+) object")


def _absolute(path: str | os.PathLike[str]) -> Path:
    """``path`` taken relative to the directory the user started the command in."""
    from clara_hydra.resolvers import original_cwd

    p = Path(os.path.expanduser(os.fspath(path)))
    return p if p.is_absolute() else original_cwd() / p


def load_datalist(
    data_list_file_path: str,
    data_file_base_dir: str | None = None,
    data_list_key: str = "training",
) -> list[dict[str, Any]]:
    """Read one list of a Clara/MSD datalist JSON, with file names made absolute.

    Relative paths (of the JSON and of the base folder) are resolved against the folder the command was
    started in, not Hydra's job folder. Without a base folder, the JSON's folder is used (MSD layout).

    Args:
        data_list_file_path: the datalist JSON (Clara ``data_list_file_path``, usually ``{DATASET_JSON}``).
        data_file_base_dir: folder the file names in the list are relative to (``{DATA_ROOT}``).
        data_list_key: which list to read (``training``, ``validation``, ...).

    Returns:
        The list of dicts, ``image``/``label`` as absolute paths.

    Raises:
        DataError: the JSON, its key or the files it lists are missing; the message names the config key,
            the value given and (for a key) the keys present.

    Example:
        >>> load_datalist("data/demo/dataset.json", "data/demo", "validation")  # doctest: +SKIP
    """
    from monai.data import load_decathlon_datalist

    list_file = _absolute(data_list_file_path)
    if not list_file.is_file():
        raise DataError(
            with_fix(
                f"data_list_file_path={data_list_file_path!r}: no such file ({list_file})",
                "set the datalist, e.g. DATASET_JSON=/path/to/dataset.json DATA_ROOT=/path/to/data",
            )
        )
    try:
        content = json.loads(list_file.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"data_list_file_path={data_list_file_path!r}: not a readable JSON file ({exc})") from exc
    if not isinstance(content, dict) or data_list_key not in content:
        present = sorted(content) if isinstance(content, dict) else []
        raise DataError(
            with_fix(
                f"data_list_key={data_list_key!r} is not in {list_file}; keys present: {present}",
                "set it, e.g. TRAIN_DATALIST_KEY=training",
            )
        )
    base = _absolute(data_file_base_dir) if data_file_base_dir else list_file.parent
    if not base.is_dir():
        raise DataError(
            with_fix(f"data_file_base_dir={data_file_base_dir!r}: no such folder ({base})", "set DATA_ROOT")
        )
    items: list[dict[str, Any]] = load_decathlon_datalist(
        os.fspath(list_file), is_segmentation=True, data_list_key=data_list_key, base_dir=os.fspath(base)
    )
    missing = [
        os.fspath(value)
        for item in items
        for key in _FILE_KEYS
        if isinstance((value := item.get(key)), str) and not os.path.exists(value)
    ]
    if missing:
        shown = ", ".join(missing[:_MAX_LISTED]) + (" ..." if len(missing) > _MAX_LISTED else "")
        raise DataError(
            with_fix(
                f"{len(missing)} file(s) listed under {data_list_key!r} in {list_file} are missing "
                f"(data_file_base_dir={data_file_base_dir!r}): {shown}",
                "set DATA_ROOT to the folder the datalist's file names are relative to",
            )
        )
    return items


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost exception of a chain (MONAI wraps the reader's error in ``applying transform ...``)."""
    seen = {id(exc)}
    while (inner := exc.__cause__ or exc.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        exc = inner
    return exc


def _failed_transform(exc: BaseException) -> str | None:
    """The class name of the MONAI transform that raised, from its ``applying transform <...>`` wrapper."""
    link: BaseException | None = exc
    found = None
    while link is not None:
        match = _TRANSFORM.search(str(link))
        found = match.group(1).rsplit(".", 1)[-1] if match else found
        link = link.__cause__ or link.__context__
        if link is exc:
            break
    return found


def broken_files(item: Any) -> list[str]:
    """The files named by a datalist entry that cannot be read on their own (an empty list when all can).

    Only called after loading the entry failed, so the cost of reading them again is paid on the error path.
    """
    from monai.transforms import LoadImage

    values = item.values() if isinstance(item, dict) else [item]
    broken = []
    for path in (v for v in values if isinstance(v, str) and os.path.isfile(v)):
        try:
            LoadImage(image_only=True)(path)
        except Exception:
            broken.append(path)
    return broken


def load_error(where: str, index: int, item: Any, exc: BaseException) -> DataError:
    """A :class:`DataError` for a datalist entry whose loading or preprocessing failed.

    It names the dataset's config key, the entry, the file that cannot be read (tried one by one), the
    transform that raised and the root cause (``EOFError: Compressed file ended ...``).

    Args:
        where: the dataset's config key (``train.dataset``).
        index: the entry's index in the datalist.
        item: the entry (``{"image": path, "label": path}``).
        exc: what loading raised.
    """
    if isinstance(exc, DataError):
        return exc
    cause = _root_cause(exc)
    reason = f"{type(cause).__name__}: {shorten(str(cause), 300)}"
    transform = _failed_transform(exc)
    in_transform = f" in {transform}" if transform else ""
    broken = broken_files(item)
    if broken:
        return DataError(
            with_fix(
                f"{where}: cannot read {', '.join(broken)} (datalist entry {index}){in_transform}: {reason}",
                "the file is truncated or corrupt: copy it again, or remove its entry from the datalist",
            )
        )
    return DataError(
        with_fix(
            f"{where}: datalist entry {index} {shorten(item, 300)} failed{in_transform}: {reason}",
            "check this entry's files and the transform's arguments",
        )
    )
