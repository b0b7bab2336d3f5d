"""Toy task for the sweeper tests. Behaviour switches (environment variables, read per job):

- ``TOY_LOG``: append one JSON line per training (counts trainings, records the config seen).
- ``TOY_EXIT_AT=<k>``: ``os._exit(3)`` at trial number k (a killed sweep); ``TOY_INTERRUPT_AT=<k>``:
  raise KeyboardInterrupt there (Ctrl-C); ``TOY_EXIT_AFTER=<k>``: ``os._exit(3)`` once trial k's checkpoint
  is written (a kill between a job's end and its record).
- ``TOY_SLEEP=<s>``: sleep that long in every training (workers' trials overlap; a test can kill one).
- ``TOY_FILL_AT=<k>``: at trial k, fill the disk under the job folder with a checkpoint (the write fails
  with ENOSPC and the job raises it); ``TOY_FILL_QUIET_AT=<k>``: the same, but the job swallows the error
  and returns normally (the sweeper's own next write meets the full disk).
- ``TOY_REOPEN=1``: forget the live trial so report() reopens it from the storage, as a job in another
  process (joblib, submitit) does.
"""

from __future__ import annotations

import json
import os
import time

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from clara_hydra.sweeper import trial_report


def objective(cfg: DictConfig) -> float:
    """Smallest at x = 0.3, n = 1, sgd, narrow width."""
    width = OmegaConf.to_container(cfg.width)
    assert isinstance(width, list)
    return (cfg.x - 0.3) ** 2 + 0.01 * cfg.n + (0.0 if cfg.opt.name == "sgd" else 0.05) + 0.001 * sum(width) / 8


def _result_files(sweep_dir: str) -> dict[str, int | None]:
    """What the sweep folder holds when this job starts: report.html's mtime, trials.csv's row count."""
    report = os.path.join(sweep_dir, "report.html")
    csv_file = os.path.join(sweep_dir, "trials.csv")
    rows = None
    if os.path.exists(csv_file):
        with open(csv_file) as f:
            rows = sum(1 for _ in f) - 1
    return {"report_mtime": os.stat(report).st_mtime_ns if os.path.exists(report) else None, "csv_rows": rows}


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | list[float]:
    number = trial_report.trial_number()
    if os.environ.get("TOY_EXIT_AT") == str(number):
        os._exit(3)
    if os.environ.get("TOY_INTERRUPT_AT") == str(number):
        raise KeyboardInterrupt
    if os.environ.get("TOY_LOG"):
        record = {
            "trial": number,
            "x": cfg.x,
            "n": cfg.n,
            "width": OmegaConf.to_container(cfg.width),
            "opt": cfg.opt.name,
            "mode": cfg.mode,
            "output_dir": HydraConfig.get().runtime.output_dir,
            "pid": os.getpid(),
            "worker": os.environ.get("CLARA_HYDRA_WORKER"),
            "files": _result_files(str(HydraConfig.get().sweep.dir)),
        }
        with open(os.environ["TOY_LOG"], "a") as f:
            f.write(json.dumps(record) + "\n")
    if os.environ.get("TOY_SLEEP"):
        time.sleep(float(os.environ["TOY_SLEEP"]))
    if os.environ.get("TOY_REOPEN"):
        trial_report._live.clear()
    final = objective(cfg)
    for step in range(cfg.steps):
        trial_report.report(final + 1.0 / (step + 1), step)  # decreasing towards the final value
    out = os.path.join(HydraConfig.get().runtime.output_dir, "models")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "model.pt"), "wb") as f:
        f.write(b"0" * 1000)  # a fake checkpoint for keep_best
    if str(number) in (os.environ.get("TOY_FILL_AT"), os.environ.get("TOY_FILL_QUIET_AT")):
        try:
            with open(os.path.join(out, "filler.pt"), "wb") as f:
                while True:
                    f.write(b"0" * (1 << 16))
                    f.flush()
        except OSError:
            if os.environ.get("TOY_FILL_AT") == str(number):
                raise
    if os.environ.get("TOY_EXIT_AFTER") == str(number):
        os._exit(3)  # killed between the job's end and its record
    if cfg.mode == "diverge":
        return float("nan")
    if cfg.mode == "raise":
        raise ValueError("toy failure")
    if cfg.mode == "oom":
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    if cfg.mode == "fail":
        raise FileNotFoundError("no such datalist: /nope/dataset.json")
    if cfg.objectives == 2:
        return [final, cfg.x]
    return final


if __name__ == "__main__":
    main()
