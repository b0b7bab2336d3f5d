"""Starting a sweep: open or create the study, claim its sweep folder, undo a start that failed.

- A study remembers the sweep folder of its first run (study user attribute ``sweep_dir``); later runs
  and every worker write there, so one folder holds the whole study and job folder N is trial N.
- A sweep folder belongs to one study: its ``.study.json`` names the study and the storage. A *new*
  study pointed at a folder another study owns is refused (it would overwrite job folder 0 and the
  other study's result files).
- A sweep that cannot start leaves no study behind: a study this run created is deleted again when
  start-up fails before its first trial, so the next run does not "resume" an empty study.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from clara_hydra.errors import SweepError, with_fix

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

OWNER_FILE = ".study.json"


def study_exists(storage: optuna.storages.BaseStorage, study_name: str) -> bool:
    """Whether the storage already holds a study of that name."""
    try:
        storage.get_study_id_from_name(study_name)
    except KeyError:
        return False
    return True


def check_folder_free(sweep_dir: Path, study_name: str, storage_display: str) -> None:
    """Refuse to start a new study in a sweep folder that another study owns.

    Raises:
        SweepError: the folder's ``.study.json`` names another study or storage.
    """
    owner = read_owner(sweep_dir)
    if owner is None:
        return
    if owner.get("study") == study_name and owner.get("storage") == storage_display:
        return  # this study's own folder (its storage was recreated): carry on
    raise SweepError(
        with_fix(
            f"sweep folder {sweep_dir} belongs to study '{owner.get('study')}' in {owner.get('storage')}; "
            f"a new study '{study_name}' there would overwrite its job folders and result files",
            "set another hydra.sweep.dir, or the study_name/storage of the study that owns the folder",
        )
    )


def read_owner(sweep_dir: Path) -> dict[str, str] | None:
    """The ``.study.json`` of a sweep folder, or ``None``."""
    path = sweep_dir / OWNER_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def claim_folder(sweep_dir: Path, study_name: str, storage_display: str) -> None:
    """Write the folder's ``.study.json`` (first run of a study only)."""
    if read_owner(sweep_dir) is not None:
        return
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / OWNER_FILE).write_text(json.dumps({"study": study_name, "storage": storage_display}) + "\n")


def delete_new_study(storage: optuna.storages.BaseStorage, study_name: str, sweep_dir: Path | None) -> None:
    """Delete a study this run created (start-up failed before its first trial), and its folder claim."""
    import optuna

    if not study_exists(storage, study_name):
        return  # start-up failed before the study was created
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
        if any(t.state.is_finished() or t.state.name == "RUNNING" for t in study.get_trials(deepcopy=False)):
            return  # another worker already ran trials in it: keep it
        optuna.delete_study(study_name=study_name, storage=storage)
    except Exception as exc:  # cleaning up must not hide the start-up error
        log.warning("could not delete the new, empty study '%s': %s", study_name, exc)
        return
    if sweep_dir is not None:
        owner = sweep_dir / OWNER_FILE
        if (read_owner(sweep_dir) or {}).get("study") == study_name:
            owner.unlink(missing_ok=True)
    log.info("start-up failed: the new, empty study '%s' was deleted again", study_name)
