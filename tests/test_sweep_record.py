"""The sweep record (clara_hydra/sweep_record/): one owner of every attribute name, the typed trial record,
open_sweep, and a ``clara-hydra --help`` that imports no Optuna."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from clara_hydra.errors import SweepError
from clara_hydra.sweep_record import (
    StudyAttr,
    SweepNotFoundError,
    SystemAttr,
    TrialAttr,
    open_sweep,
    trial_record,
)

ROOT = Path(__file__).resolve().parents[1]
NAMES = [m.value for enum in (TrialAttr, StudyAttr, SystemAttr) for m in enum]
# Names that are ordinary words too (result-file keys, csv columns): checked only where an attribute is read or
# written. Every other name must not appear as a string literal anywhere in the package but the record module.
GENERIC = {"job_dir", "overrides", "worker", "baseline"}
_Q = r"[\"']"
DISTINCT = re.compile(rf"{_Q}({'|'.join(re.escape(n) for n in NAMES if n not in GENERIC)}){_Q}")
WORDS = "|".join(map(re.escape, sorted(GENERIC)))
# a generic name as the key of an attribute read or write: attrs.get("x", attrs["x"], set_user_attr("x",
# storage.set_trial_user_attr(tid, "x", user_attrs={"x": ...
KEYED = re.compile(rf"(?:attrs(?:\.get\(|\[)|set_\w*attr\((?:[\w.]+,\s*)?|user_attrs=\{{){_Q}(?:{WORDS}){_Q}")


def _offends(line: str) -> bool:
    """A line that spells an attribute name as a literal (a generic one only as an attribute's key)."""
    return DISTINCT.search(line) is not None or KEYED.search(line) is not None


def _sources() -> list[Path]:
    files = [*(ROOT / "clara_hydra").rglob("*.py"), *(ROOT / "hydra_plugins").rglob("*.py"), ROOT / "train.py"]
    record = ROOT / "clara_hydra" / "sweep_record"
    return [f for f in files if record not in f.parents and f.is_file()]


def test_attribute_names_are_unique() -> None:
    trial = [m.value for m in TrialAttr]
    study = [m.value for m in StudyAttr]
    system = [m.value for m in SystemAttr]
    assert len(set(trial)) == len(trial) and len(set(study)) == len(study) and len(set(system)) == len(system)


def test_no_attribute_name_is_spelled_outside_the_record_module() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in _sources()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if _offends(line)
    ]
    assert found == [], "attribute names belong in clara_hydra/sweep_record/names.py:\n" + "\n".join(found)


def test_the_grep_finds_a_literal() -> None:
    """The test above can fail: it flags the spellings it forbids, and leaves result-file keys alone."""
    assert _offends('reason = str(attrs.get("fail_reason", ""))')
    assert _offends("STUDY_ATTR_SWEEP_DIR = 'sweep_dir'")
    assert _offends("trial.set_user_attr('job_dir', x)")
    assert _offends('t.user_attrs["worker"]')
    assert _offends('storage.set_trial_user_attr(tid, "overrides", [])')
    assert _offends('study.enqueue_trial(p, user_attrs={"baseline": True})')
    assert not _offends('out["job_dir"] = record.job_dir')
    assert not _offends('"job_dir": t.user_attrs.get(TrialAttr.JOB_DIR),')
    assert not _offends("trial.set_user_attr(TrialAttr.JOB_DIR, x)")


def test_optuna_marks_enqueued_trials_with_fixed_params() -> None:
    """SystemAttr.OPTUNA_FIXED_PARAMS is Optuna's own name (Study.enqueue_trial); the runner reads it to tell an
    enqueued trial from a sampled one. Fails when Optuna renames it."""
    study = optuna.create_study()
    study.enqueue_trial({"x": 0.5})
    study.ask(), study.ask()
    enqueued, sampled = study.get_trials(deepcopy=False)
    assert SystemAttr.OPTUNA_FIXED_PARAMS in enqueued.system_attrs
    assert SystemAttr.OPTUNA_FIXED_PARAMS not in sampled.system_attrs


def _study(storage: str | optuna.storages.BaseStorage) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="toy", storage=storage)
    t0 = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    t0.set_user_attr(TrialAttr.JOB_DIR, "/sweep/0")
    t0.set_user_attr(TrialAttr.WORKER, "w1@host")
    t0.set_user_attr(TrialAttr.OVERRIDES, ["x=0.5"])
    t0.set_user_attr(TrialAttr.BASELINE, True)
    study.tell(t0, 0.25)
    t1 = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    t1.set_user_attr(TrialAttr.FAIL_REASON, "CUDA out of memory")
    t1.set_user_attr(TrialAttr.RETRY_OF, 0)
    study.tell(t1, state=optuna.trial.TrialState.FAIL)
    study.add_trial(
        optuna.trial.create_trial(
            params={"x": 0.1},
            distributions={"x": optuna.distributions.FloatDistribution(0, 1)},
            value=0.01,
            user_attrs={TrialAttr.WARM_START: "study 'old' trial 3"},
        )
    )
    study.set_user_attr(StudyAttr.SWEEP_DIR, "/nowhere/sweep")
    return study


def test_trial_record_from_a_journal(tmp_path: Path) -> None:
    """Written with the enum names, read back through a real journal file: plain strings on disk."""
    from clara_hydra.sweeper.storage import open_storage

    url = f"journal:///{tmp_path}/toy.journal"
    _study(open_storage(url))
    text = (tmp_path / "toy.journal").read_text()
    assert '"job_dir"' in text and "TrialAttr" not in text
    loaded = optuna.load_study(study_name="toy", storage=open_storage(url))
    r0, r1, r2 = (trial_record(t) for t in loaded.get_trials())
    assert (r0.number, r0.state, r0.values, r0.value) == (0, "COMPLETE", (0.25,), 0.25)
    assert (r0.job_dir, r0.worker, r0.overrides, r0.baseline, r0.reason) == (
        "/sweep/0",
        "w1@host",
        ("x=0.5",),
        True,
        "",
    )
    assert r0.duration_s is not None and r0.duration_s >= 0 and r0.ran_here
    assert (r1.state, r1.reason, r1.retry_of, r1.value) == ("FAIL", "CUDA out of memory", 0, None)
    assert r2.warm_started and not r2.ran_here and r2.reason == "warm start: study 'old' trial 3, not run here"


def test_open_sweep_folder_storage_and_errors(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    study = _study(f"sqlite:///{db}")
    folder = tmp_path / "sweep"
    folder.mkdir()
    (folder / "optimization_results.yaml").write_text(
        yaml.safe_dump({"storage": f"sqlite:///{db}", "study_name": "toy"})
    )
    sweep = open_sweep(folder)
    assert sweep.name == "toy" and sweep.folder == folder and len(sweep.study.trials) == 3
    by_url = open_sweep(f"sqlite:///{db}")
    assert by_url.name == "toy" and by_url.folder == Path.cwd()  # the stored sweep folder is gone
    study.set_user_attr(StudyAttr.SWEEP_DIR, str(folder))
    assert open_sweep(str(db)).folder == folder  # a *.db path; the study's own folder
    optuna.create_study(study_name="other", storage=f"sqlite:///{db}")
    with pytest.raises(SweepError, match=r"(?s)2 studies in .*\['toy', 'other'\].*choose one with --study NAME"):
        open_sweep(f"sqlite:///{db}")
    with pytest.raises(SweepError, match=r"(?s)no study 'nope' in .*one of \['toy', 'other'\]"):
        open_sweep(f"sqlite:///{db}", "nope")
    with pytest.raises(SweepNotFoundError, match="no sweep folder or storage file at"):
        open_sweep(tmp_path / "missing.journal")
    (folder / "optimization_results.yaml").write_text(yaml.safe_dump({"storage": "postgresql://u:***@h/db"}))
    with pytest.raises(SweepError, match="password is masked"):
        open_sweep(folder)


@pytest.mark.parametrize("argv", [["--help"], ["convert", "--help"], ["report", "--help"], ["export", "--help"]])
def test_help_imports_no_optuna(argv: list[str]) -> None:
    code = (
        "import sys\nfrom clara_hydra.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'optuna', 'torch', 'monai', 'plotly', 'mlflow'})\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert "HEAVY []" in proc.stderr, proc.stderr[-2000:]
    assert "usage: clara-hydra" in proc.stdout
