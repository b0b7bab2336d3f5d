"""Opening a sweep's study for reading, from its sweep folder or its storage URL (report, export, warm starts)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from clara_hydra.errors import SweepError, shorten, with_fix
from clara_hydra.sweep_record.names import RESULTS_FILE, StudyAttr

if TYPE_CHECKING:
    import optuna


class SweepNotFoundError(SweepError, FileNotFoundError):
    """Raised by :func:`open_sweep` when its target is neither a sweep folder nor an existing storage file."""


@dataclass(frozen=True)
class Sweep:
    """An existing study opened for reading by :func:`open_sweep`.

    Args:
        study: the study, read from its storage.
        folder: its sweep folder (the study's own when it still exists, else the folder given, else the cwd).
        url: the storage URL (with its password: never print it; see ``display``).
        display: the storage URL with its password masked.
    """

    study: optuna.Study
    folder: Path
    url: str
    display: str

    @property
    def name(self) -> str:
        """The study's name."""
        return self.study.study_name


def open_sweep(target: str | Path, study: str | None = None, *, study_hint: str = "--study NAME") -> Sweep:
    """The study named by a sweep folder or a storage, opened for reading.

    Used by ``clara-hydra report``, ``clara-hydra export`` (a storage URL) and ``hydra.sweeper.warm_start``.

    Args:
        target: a sweep folder (its ``optimization_results.yaml`` names the storage and the study; else its one
            ``optuna/*.journal``), or a storage: ``sqlite:///x.db``, ``journal:///x.journal``,
            ``postgresql://...``, or a ``*.db``/``*.journal`` path.
        study: the study; needed only when the storage holds several.
        study_hint: how the caller's user names a study (``--study NAME``), for the messages.

    Returns:
        The :class:`Sweep`.

    Raises:
        SweepNotFoundError: no sweep folder or storage file there.
        SweepError: a folder no sweep wrote, a masked password, no or several studies, an unknown study name.
    """
    import optuna

    from clara_hydra.sweeper.storage import JOURNAL_SCHEME, mask_password, open_storage, resolve_storage

    text = str(target)
    folder = Path(text)
    if folder.is_dir():
        url, study = _from_sweep_dir(folder, study, study_hint)
    else:
        url = resolve_storage(text, study or "", cfg=None, cwd=None).url  # type: ignore[arg-type]
        local = _local_file(url, JOURNAL_SCHEME)
        if local is not None and not Path(local).is_file():
            raise SweepNotFoundError(
                with_fix(
                    f"no sweep folder or storage file at {shorten(text)}",
                    "pass the sweep folder (it holds optimization_results.yaml) or the storage URL",
                )
            )
        folder = Path.cwd()
    where = shorten(mask_password(text))
    storage = open_storage(url)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    if study is None:
        if len(names) != 1:
            raise SweepError(with_fix(f"{len(names)} studies in {where}: {names}", f"choose one with {study_hint}"))
        study = names[0]
    elif study not in names:
        raise SweepError(with_fix(f"no study {study!r} in {where}", f"one of {names}"))
    loaded = optuna.load_study(study_name=study, storage=storage)
    stored = loaded.user_attrs.get(StudyAttr.SWEEP_DIR)
    if stored and Path(stored).is_dir():
        folder = Path(stored)
    return Sweep(study=loaded, folder=folder, url=url, display=mask_password(url))


def _from_sweep_dir(folder: Path, study: str | None, study_hint: str) -> tuple[str, str | None]:
    import yaml

    results = folder / RESULTS_FILE
    if results.is_file():
        data = yaml.safe_load(results.read_text()) or {}
        url = str(data.get("storage") or "")
        if "***" in url:  # the file holds the URL with its password masked
            raise SweepError(
                with_fix(
                    f"{results} names a storage whose password is masked ({url})",
                    f"pass the storage URL instead: 'postgresql://user:pw@host/db' with {study_hint}",
                )
            )
        if url:
            return url, study or data.get("study_name")
    journals = sorted((folder / "optuna").glob("*.journal"))
    if len(journals) == 1:
        from clara_hydra.sweeper.storage import JOURNAL_SCHEME

        return JOURNAL_SCHEME + str(journals[0].resolve()), study
    raise SweepError(
        with_fix(
            f"{folder} holds no {RESULTS_FILE} (nor one optuna/*.journal)",
            f"pass the sweep folder a sweep wrote, or the storage URL with {study_hint}",
        )
    )


def _local_file(url: str, journal_scheme: str) -> str | None:
    """The file behind a journal or SQLite URL (None for a server)."""
    for scheme in (journal_scheme, "sqlite:///"):
        if url.startswith(scheme):
            return url[len(scheme) :]
    return None
