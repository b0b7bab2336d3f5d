"""Non-ASCII text reaches jobs in other processes unchanged (issue 10: one quoting module for override text).

The trial identity goes to each job as JSON in ``hydra.job.env_set`` (an override). JSON escapes ``é`` as
``\\u00e9``; a quoter that doubled every backslash turned that into ``\\\\u00e9``, so a job in a joblib worker read a
storage path that does not exist and could not reopen its trial.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clara_hydra.quoting import override_quoted
from clara_hydra.sweeper.grammar import parse_override, quote


@pytest.mark.parametrize(
    "text",
    ["é", "/data/ü ñ/x.journal", '{"storage": "/tmp/sw\\u00e9ep"}', "C:\\dir\\", "it's", "\\'", "a\u2028b", "\\\\'"],
)
def test_override_quoting_reads_back_with_hydras_parser(text: str) -> None:
    assert quote(text) == override_quoted(text)
    assert parse_override(f"x={quote(text)}", "test").value() == text


def test_a_non_ascii_sweep_folder_reaches_joblib_workers(run_toy: Any, tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="needs hydra-joblib-launcher")
    folder = tmp_path / "swé€p ü\u2028\u2029x"  # non-ASCII letters, a symbol, a space, U+2028/U+2029
    sweep = run_toy(
        f"hydra.sweep.dir={quote(str(folder))}",
        "x=interval(0,1)", "steps=2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.n_trials=2", "hydra.sweeper.baseline_trial=false", "hydra.sweeper.sampler.seed=0",
        env={"TOY_REOPEN": "1"},  # each job reopens its trial from the storage path it was given
        sweep_dir=None,
    )  # fmt: skip
    sweep.sweep_dir = folder
    assert [r["state"] for r in sweep.trials()] == ["COMPLETE", "COMPLETE"]
    assert sorted(t["output_dir"] for t in sweep.trainings()) == [str(folder / "0"), str(folder / "1")]
    assert (folder / "optuna" / "toy.journal").is_file()
