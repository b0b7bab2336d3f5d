"""``keep_best``: only the best N trial folders keep their checkpoints (Clara's ``num_mmars_to_keep``).

After every batch, the checkpoint files (``*.pt``, ``*.pth``, ``*.ts``) of every finished trial that is
not among the best N completed ones are deleted, and a log line says which and how much. Logs, configs
and summaries stay, so every trial remains inspectable; duplicates share their original's folder.

A study is untrusted input: its trials' ``job_dir`` attributes only *name* candidates. Files are deleted
only inside the sweep folder this run owns, every path resolved (symlinks included) before it is compared,
so a trial record naming another folder, or a symlink inside a job folder pointing out of the sweep, never
leads to a deletion elsewhere; such a record is ignored with one warning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from clara_hydra.sweep_record import TrialAttr

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)
CHECKPOINT_PATTERNS = ("*.pt", "*.pth", "*.ts")


# (sweep folder, job_dir) pairs already reported as outside the sweep folder (one warning each).
_warned: set[tuple[str, str]] = set()


def prune_checkpoints(study: optuna.Study, keep: int, root: Path) -> list[Path]:
    """Delete the checkpoints of finished trials outside the best ``keep`` (single-objective studies).

    Args:
        study: the study; trials know their folder from the ``job_dir`` user attribute.
        keep: how many of the best completed trials keep their checkpoints.
        root: the sweep folder this run owns: nothing outside it is deleted.

    Returns:
        The deleted files.
    """
    from optuna.trial import TrialState

    trials = [
        t for t in study.get_trials(deepcopy=False) if t.state.is_finished() and t.user_attrs.get(TrialAttr.JOB_DIR)
    ]
    maximize = study.directions[0].name.lower() == "maximize"
    complete = [t for t in trials if t.state == TrialState.COMPLETE and TrialAttr.DUPLICATE_OF not in t.user_attrs]
    complete.sort(key=lambda t: (-(t.value or 0.0) if maximize else (t.value or 0.0), t.number))
    kept_dirs = {str(t.user_attrs[TrialAttr.JOB_DIR]) for t in complete[:keep]}
    deleted: list[Path] = []
    numbers: list[int] = []
    size = 0
    base = root.resolve()
    foreign: list[str] = []
    for t in trials:
        job_dir = str(t.user_attrs[TrialAttr.JOB_DIR])
        inside = _inside(Path(job_dir), base)
        if inside is None:
            if (str(base), job_dir) not in _warned:
                _warned.add((str(base), job_dir))
                foreign.append(f"trial {t.number}: {job_dir}")
            continue
        if job_dir in kept_dirs:
            continue
        files = [f for f in _checkpoints(inside) if _inside(f, base) is not None]
        for f in files:
            try:
                size += f.stat().st_size
                f.unlink()
                deleted.append(f)
            except OSError as exc:  # a file another process removed or holds: not worth failing a sweep
                log.warning("keep_best: could not delete %s: %s", f, exc)
        if files:
            numbers.append(t.number)
    if foreign:
        log.warning(
            "keep_best: ignored %d trial record(s) whose job folder is not inside the sweep folder %s (nothing "
            "deleted there): %s",
            len(foreign),
            base,
            "; ".join(foreign),
        )
    if deleted:
        log.info(
            "keep_best=%d: deleted %d checkpoint file(s) (%.1f MB) of trial(s) %s, not among the best %d",
            keep,
            len(deleted),
            size / 1e6,
            ", ".join(map(str, numbers)),
            keep,
        )
    return deleted


def _inside(path: Path, base: Path) -> Path | None:
    """``path`` resolved (symlinks followed) when it lies strictly inside ``base``, else ``None``."""
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return None
    return resolved if resolved != base and resolved.is_relative_to(base) else None


def _checkpoints(job_dir: Path) -> Iterable[Path]:
    if not job_dir.is_dir():
        return []
    return sorted({p for pattern in CHECKPOINT_PATTERNS for p in job_dir.rglob(pattern) if p.is_file()})
