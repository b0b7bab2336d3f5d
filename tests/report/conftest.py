"""Real Optuna studies (journal storage, synthetic objective) to write reports of."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState


def make_study(folder: Path, name: str = "toy", workers: bool = False) -> optuna.Study:
    """A study like a sweep leaves it: baseline, complete, pruned (learning curves) and failed trials."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    journal = folder / "optuna" / f"{name}.journal"
    journal.parent.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(journal)))
    study = optuna.create_study(
        study_name=name, storage=storage, direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0)
    )
    study.set_user_attr("sweep_dir", str(folder))
    for number in range(8):
        trial = study.ask()
        lr = trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)
        loss = trial.suggest_categorical("loss", ["dice_loss", "focal_loss"])
        trial.set_user_attr("job_dir", str(folder / str(number)))
        trial.set_user_attr("overrides", [f"learning_rate={lr}", f"loss={loss}"])
        trial.set_user_attr("fixed_overrides", ["experiment=quickstart"])
        if workers:
            trial.set_user_attr("worker", f"w{number % 2}@host")
        if number == 5:
            study.tell(trial, state=TrialState.FAIL)
            continue
        value = 0.0
        for epoch in range(1, 5):
            value = min(0.95, lr * 80 * epoch + (0.1 if loss == "dice_loss" else 0.0))
            trial.report(value, epoch)
        if number in (3, 6):
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, value)
    (folder / "optimization_results.yaml").write_text(
        yaml.safe_dump({"name": "optuna", "study_name": name, "storage": f"journal://{journal}"})
    )
    (folder / "best_config.yaml").write_text("epochs: 4\n")
    (folder / "0").mkdir(exist_ok=True)  # the runtime's summary names the objective
    (folder / "0" / "trial_summary.json").write_text('{"objective": {"name": "val_mean_dice"}}')
    return study


@pytest.fixture
def study_dir(tmp_path: Path) -> tuple[optuna.Study, Path]:
    folder = tmp_path / "sweep"
    return make_study(folder), folder
