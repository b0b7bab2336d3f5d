"""The `clara-hydra convert` command: MMAR folders, --env/--automl/--set, exit codes, the report on disk."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

from clara_hydra.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "tests" / "data" / "clara_examples"
SEED = EXAMPLES / "seed_full_automl_example.json"


def _raw(out: Path) -> dict:
    return OmegaConf.to_container(OmegaConf.load(out / "config.yaml"), resolve=False)  # type: ignore[return-value]


def _mmar(tmp_path: Path) -> Path:
    mmar = tmp_path / "spleen_mmar"
    (mmar / "config").mkdir(parents=True)
    shutil.copy(SEED, mmar / "config" / "config_train.json")
    shutil.copy(
        EXAMPLES / "09_NVIDIA_clara-train-examples_v4x_automl_environment.json", mmar / "config" / "environment.json"
    )
    shutil.copy(
        EXAMPLES / "06_NVIDIA_clara-train-examples_v4x_config_automl.json", mmar / "config" / "config_automl.json"
    )
    return mmar


def test_mmar_folder_picks_environment_and_automl(tmp_path: Path) -> None:
    out = tmp_path / "conf"
    assert main(["convert", str(_mmar(tmp_path)), "-o", str(out), "-q"]) == 0
    cfg = _raw(out)
    assert cfg["DATA_ROOT"] == "/claraDevDay/Data/sampleData/"
    assert cfg["MMAR_CKPT_DIR"] == "${clara.job_dir:models}"  # relative MMAR output folders go into the job folder
    assert cfg["hydra"]["sweeper"]["n_trials"] == 8
    assert (out / "conversion_report.md").read_text().startswith("# Conversion report: config_train.json")


def test_set_has_highest_priority_and_is_typed(tmp_path: Path) -> None:
    out = tmp_path / "conf"
    args = [
        "convert",
        str(_mmar(tmp_path)),
        "-o",
        str(out),
        "-q",
        "--set",
        "DATA_ROOT=/data/spleen",
        "--set",
        "INPUT_CHANNELS=1",
        "--set",
        "learning_rate=0.0003",
    ]
    assert main(args) == 0
    cfg = OmegaConf.load(out / "config.yaml")
    assert cfg.DATA_ROOT == "/data/spleen" and cfg.INPUT_CHANNELS == 1 and cfg.learning_rate == 0.0003
    assert (
        "INPUT_CHANNELS"
        not in (out / "conversion_report.md").read_text().split("## Required values")[-1].split("##")[0]
    )


def test_required_values_are_reported_and_composing_names_them(tmp_path: Path) -> None:
    out = tmp_path / "conf"
    assert main(["convert", str(SEED), "-o", str(out), "-q"]) == 0
    report = (out / "conversion_report.md").read_text()
    for name in ("INPUT_CHANNELS", "OUTPUT_CHANNELS", "DATASET_JSON", "DATA_ROOT", "TRAIN_DATALIST_KEY"):
        assert f"`{name}`" in report
    assert _raw(out)["INPUT_CHANNELS"] == "???"


def test_reconversion_is_deterministic_and_removes_stale_options(tmp_path: Path) -> None:
    out = tmp_path / "conf"
    (out / "loss").mkdir(parents=True)
    (out / "loss" / "stale.yaml").write_text("# from an older conversion\n")
    assert main(["convert", str(SEED), "-o", str(out), "-q"]) == 0
    first = {p: p.read_bytes() for p in out.rglob("*.yaml")}
    assert not (out / "loss" / "stale.yaml").exists()
    assert main(["convert", str(SEED), "-o", str(out), "-q"]) == 0
    assert first == {p: p.read_bytes() for p in out.rglob("*.yaml")}


def test_user_errors_exit_2_without_traceback(tmp_path: Path) -> None:
    for args in (
        ["convert", str(tmp_path / "missing.json")],
        ["convert", str(tmp_path)],
        ["convert"],
        ["convert", str(EXAMPLES / "06_NVIDIA_clara-train-examples_v4x_config_automl.json"), "-o", str(tmp_path / "o")],
    ):
        proc = subprocess.run(
            [sys.executable, "tools/convert_clara.py", *args[1:]]
            if len(args) > 1
            else [sys.executable, "-m", "clara_hydra.cli", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_conversion_does_not_import_torch() -> None:
    # Conversion must stay fast (< 2 s with imports): signatures come from a shipped index, not from importing MONAI.
    code = (
        "import sys; from clara_hydra.convert import convert_path; "
        f"convert_path({str(SEED)!r}); assert 'torch' not in sys.modules and 'monai' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
