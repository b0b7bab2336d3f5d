"""Find the study of ``clara-hydra report SWEEP_DIR|STORAGE [--study NAME]`` and write its report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from clara_hydra.errors import SweepError, shorten, with_fix

if TYPE_CHECKING:
    import optuna

RESULTS_FILE = "optimization_results.yaml"
STUDY_ATTR_SWEEP_DIR = "sweep_dir"  # set by the sweeper on a study's first run (clara_hydra.sweeper.resume)


def open_study(target: str, study_name: str | None = None) -> tuple[optuna.Study, Path]:
    """The study named by a sweep folder or a storage, and the folder its report belongs in.

    Args:
        target: a sweep folder (it holds ``optimization_results.yaml``, which names the storage and the
            study), or a storage: ``sqlite:///x.db``, ``journal:///x.journal``, ``postgresql://...``, or a
            ``*.db``/``*.journal`` path.
        study_name: the study; needed only when the storage holds several.

    Returns:
        The study (read from its storage) and the sweep folder (the study's own, else the folder given,
        else the current folder).

    Raises:
        SweepError: nothing readable there, no or several studies, an unknown study name.
    """
    import optuna

    from clara_hydra.sweeper.storage import JOURNAL_SCHEME, open_storage, resolve_storage

    folder = Path(target)
    if folder.is_dir():
        url, study_name = _from_sweep_dir(folder, study_name)
    else:
        url = resolve_storage(target, study_name or "", cfg=None, cwd=None).url  # type: ignore[arg-type]
        local = _local_file(url, JOURNAL_SCHEME)
        if local is not None and not Path(local).is_file():
            raise SweepError(
                with_fix(
                    f"no sweep folder or storage file at {shorten(target)}",
                    "pass the sweep folder (it holds optimization_results.yaml) or the storage URL",
                )
            )
        folder = Path.cwd()
    storage = open_storage(url)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    if study_name is None:
        if len(names) != 1:
            raise SweepError(
                with_fix(
                    f"{len(names)} studies in {shorten(target)}: {names}",
                    "choose one with --study NAME",
                )
            )
        study_name = names[0]
    elif study_name not in names:
        raise SweepError(with_fix(f"no study {study_name!r} in {shorten(target)}", f"one of {names}"))
    study = optuna.load_study(study_name=study_name, storage=storage)
    stored = study.user_attrs.get(STUDY_ATTR_SWEEP_DIR)
    if stored and Path(stored).is_dir():
        folder = Path(stored)
    return study, folder


def _from_sweep_dir(folder: Path, study_name: str | None) -> tuple[str, str | None]:
    results = folder / RESULTS_FILE
    if results.is_file():
        data = yaml.safe_load(results.read_text()) or {}
        url = str(data.get("storage") or "")
        if "***" in url:  # the file holds the URL with its password masked
            raise SweepError(
                with_fix(
                    f"{results} names a storage whose password is masked ({url})",
                    "pass the storage URL instead: clara-hydra report 'postgresql://user:pw@host/db' --study NAME",
                )
            )
        if url:
            return url, study_name or data.get("study_name")
    journals = sorted((folder / "optuna").glob("*.journal"))
    if len(journals) == 1:
        from clara_hydra.sweeper.storage import JOURNAL_SCHEME

        return JOURNAL_SCHEME + str(journals[0].resolve()), study_name
    raise SweepError(
        with_fix(
            f"{folder} holds no {RESULTS_FILE} (nor one optuna/*.journal)",
            "pass the sweep folder a sweep wrote, or the storage URL with --study NAME",
        )
    )


def _local_file(url: str, journal_scheme: str) -> str | None:
    """The file behind a journal or SQLite URL (None for a server)."""
    for scheme in (journal_scheme, "sqlite:///"):
        if url.startswith(scheme):
            return url[len(scheme) :]
    return None


def report(target: str, study_name: str | None = None) -> Path:
    """Write the report of the study at ``target`` (see :func:`open_study`); return its path."""
    from clara_hydra.report.page import write_report

    study, folder = open_study(target, study_name)
    return write_report(study, folder)
