"""Sweep speed benchmark (issue 5): the same N-trial search three ways, on the same machine and data.

    python tools/bench/sweep_speed.py              # full run: 8 trials, 5 epochs, 24 volumes of 128^3
    python tools/bench/sweep_speed.py --quick      # smoke run: 3 trials, 2 epochs, 6 volumes of 64^3
    python tools/bench/sweep_speed.py --unstaged   # also (c) without cache stages (CLARA_HYDRA_CACHE_STAGES=0)

(c) ``python train.py -m`` of the converted seed example (quickstart sizes, plus ``Spacingd`` 1 -> 2 mm in the
    deterministic prefix), random sampler with a fixed seed, no pruner; (a) Clara-style: each trial of (c),
    with the values of its composed config, as its own process running ``plain_trial.py`` (plain MONAI that
    imports everything and loads its data afresh); (b) ``plain_trial.run_trial`` of one trial of (c), in
    this process, as the floor; and (c') the sweep of (c) with a pruner, for the epochs it saves.

Printed: per-trial framework overhead (c's trial time, from Optuna's start to its tell, against (b)'s training
time for the same values; c's trial reads its data from the cache, so (b)'s data loading is left out of
its floor), sweep wall time (c against a), and trained epochs and best Dice with and without the pruner.
The data set is generated once into ``data/bench_sweep`` (``/data/`` is git-ignored); runs go to
``runs/bench/<time>/``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
PYTHON = sys.executable

FULL = {"trials": 8, "epochs": 5, "n_train": 20, "n_val": 4, "size": 128, "radius": (10.0, 18.0)}
QUICK = {"trials": 3, "epochs": 2, "n_train": 4, "n_val": 2, "size": 64, "radius": (6.0, 10.0)}
SPACING = 2.0  # mm: 128^3 at 1 mm -> 64^3, resampled in the deterministic prefix of every trial
CPU: dict[str, float] = {}  # CPU seconds (user + system) of each run's processes, by run folder name


def _children_cpu() -> float:
    """CPU seconds used so far by this process's finished children (less sensitive to other jobs than wall time)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


PRUNER = [
    "hydra/sweeper/pruner=percentile",
    "hydra.sweeper.pruner.percentile=66",  # prune a trial in the bottom two thirds at a step
    "hydra.sweeper.pruner.n_startup_trials=2",
    "hydra.sweeper.pruner.n_warmup_steps=0",
]


def bench_conf(target: Path) -> Path:
    """The repo's converted ``conf/`` with ``Spacingd`` inserted after ``EnsureChannelFirstd`` (train, validate)."""
    from omegaconf import OmegaConf

    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(REPO / "conf", target)
    cfg = OmegaConf.load(target / "config.yaml")
    spacing = {
        "_target_": "monai.transforms.Spacingd",
        "keys": ["image", "label"],
        "pixdim": [SPACING] * 3,
        "mode": ["bilinear", "nearest"],
    }
    for section in ("train", "validate"):
        members = OmegaConf.to_container(cfg[section].pre_transforms, resolve=False)
        assert isinstance(members, dict)
        rebuilt: dict[str, Any] = {}
        for name, node in members.items():
            rebuilt[name] = node
            if name == "ensure_channel_firstd":
                rebuilt["spacingd"] = spacing
        cfg[section].pre_transforms = rebuilt
    OmegaConf.save(cfg, target / "config.yaml")
    # experiment=bench: the quickstart without its pruner (the benchmark chooses the pruner per sweep); the
    # quickstart selects it as a group option in its defaults list.
    quick = OmegaConf.load(target / "experiment" / "quickstart.yaml")
    quick.defaults = [d for d in quick.get("defaults", []) if "override /hydra/sweeper/pruner" not in d]
    if not quick.defaults:
        del quick["defaults"]
    quick.hydra.sweeper.pop("pruner", None)
    text = "# @package _global_\n" + OmegaConf.to_yaml(quick)
    (target / "experiment" / "bench.yaml").write_text(text)
    return target


def sweep(
    conf: Path, data: Path, out: Path, size: dict[str, Any], pruner: list[str], env: dict[str, str] | None = None
) -> tuple[float, list[dict]]:
    """Run ``python train.py -m`` in a subprocess; return its wall time and its trials (number order)."""
    out.mkdir(parents=True, exist_ok=True)
    db = out / "study.db"
    cmd = [
        PYTHON, str(REPO / "train.py"), "-m", "-cd", str(conf), "experiment=bench",
        f"DATA_ROOT={data}", f"DATASET_JSON={data / 'dataset.json'}", f"epochs={size['epochs']}",
        f"validate.inferer.roi_size=[{size['size'] // 2},{size['size'] // 2},{size['size'] // 2}]",
        "train.dataset.cache_num=64", "validate.dataset.cache_num=16",
        "hydra/sweeper/sampler=random", "hydra.sweeper.sampler.seed=0",
        f"hydra.sweeper.n_trials={size['trials']}", f"hydra.sweeper.storage=sqlite:///{db}",
        f"hydra.sweep.dir={out}", *pruner,
    ]  # fmt: skip
    t0, cpu0 = time.perf_counter(), _children_cpu()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ, **(env or {})})
    wall = time.perf_counter() - t0
    CPU[out.name] = _children_cpu() - cpu0
    (out / "sweep.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"sweep failed ({proc.returncode}):\n{proc.stderr[-3000:]}\nlog: {out / 'sweep.log'}")
    return wall, read_trials(db, out)


def read_trials(db: Path, out: Path) -> list[dict[str, Any]]:
    """Number, state, value, epochs reported, seconds from ask to tell, and job folder of every trial."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{db}")
    trials = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else None
        job = out / str(t.number)
        summary = json.loads((job / "trial_summary.json").read_text()) if (job / "trial_summary.json").is_file() else {}
        trials.append(
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value,
                "epochs": len(t.intermediate_values),
                "seconds": seconds,
                "job": str(job),
                "caching_s": summary.get("seconds", {}).get("caching_data"),
            }
        )
    return trials


def plain_params(job: Path, seed: int, out_dir: Path) -> dict[str, Any]:
    """The values ``plain_trial.run_trial`` needs, read from a job's composed, resolved config."""
    from omegaconf import OmegaConf

    import clara_hydra.runtime  # noqa: F401  (resolvers the config uses)

    cfg = OmegaConf.load(job / ".hydra" / "config.yaml")
    OmegaConf.update(cfg, "MMAR_CKPT_DIR", str(out_dir), force_add=True)

    def plain(path: str, drop: tuple[str, ...] = ("_target_",)) -> Any:
        node = OmegaConf.to_container(OmegaConf.select(cfg, path), resolve=True)
        return {k: v for k, v in node.items() if k not in drop} if isinstance(node, dict) else node

    pre = "train.pre_transforms"
    dataset_args = ("cache_num", "cache_rate", "num_workers")
    return {
        "seed": seed,
        "data_root": cfg.DATA_ROOT,
        "dataset_json": cfg.DATASET_JSON,
        "epochs": int(cfg.epochs),
        "lr": float(cfg.train.optimizer.lr),
        "model": plain("train.model"),
        "loss": plain("train.loss", drop=()),
        "lr_scheduler": {k: v for k, v in plain("train.lr_scheduler").items() if k != "optimizer"},
        "spacingd": plain(f"{pre}.spacingd"),
        "scale": plain(f"{pre}.scale_intensity_ranged"),
        "crop_foreground": plain(f"{pre}.crop_foregroundd"),
        "crop": plain(f"{pre}.rand_crop_by_pos_neg_labeld"),
        "shift": plain(f"{pre}.rand_shift_intensityd"),
        "noise": plain(f"{pre}.rand_gaussian_noised"),
        "train_dataset": {k: v for k, v in plain("train.dataset").items() if k in dataset_args},
        "val_dataset": {k: v for k, v in plain("validate.dataset").items() if k in dataset_args},
        "train_loader": {k: plain("train.dataloader")[k] for k in ("batch_size",)},
        "num_workers": int(cfg.train.dataloader.num_workers),
        "inferer": plain("validate.inferer"),
        "out_dir": str(out_dir),
    }


def clara_style(params: list[dict[str, Any]], out: Path) -> tuple[float, list[dict[str, Any]]]:
    """Each trial as its own plain-MONAI process, one after another (Clara AutoML's job model)."""
    results = []
    out.mkdir(parents=True, exist_ok=True)
    t0, cpu0 = time.perf_counter(), _children_cpu()
    for i, p in enumerate(params):
        path = out / f"params_{i}.json"
        path.write_text(json.dumps(p))
        proc = subprocess.run([PYTHON, str(Path(__file__).parent / "plain_trial.py"), str(path)],
                              capture_output=True, text=True)  # fmt: skip
        if proc.returncode != 0:
            raise SystemExit(f"plain trial {i} failed:\n{proc.stderr[-3000:]}")
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    CPU[out.name] = _children_cpu() - cpu0
    return time.perf_counter() - t0, results


def data_counts(sweep_dir: Path) -> str:
    """How often the sweep's datasets were loaded, taken from a cache stage, or served whole (the jobs' logs)."""
    logs = "".join(f.read_text() for f in sorted(sweep_dir.glob("*/train.log")))
    return (
        f"datasets loaded {logs.count('loaded and preprocessed')}x, from a stage {logs.count('reused from stage')}x, "
        f"cache hits {logs.count('data cache hit')}x"
    )


def summarize(c_wall: float, a_wall: float, c: list[dict], b: dict, hit: dict, pruned: list[dict]) -> dict:
    """The three ratios and their inputs."""
    epochs_nop = sum(t["epochs"] for t in c)
    epochs_pruned = sum(t["epochs"] for t in pruned)
    best = max((t["value"] for t in c if t["state"] == "COMPLETE"), default=None)
    best_pruned = max((t["value"] for t in pruned if t["state"] == "COMPLETE"), default=None)
    return {
        "overhead_ratio": hit["seconds"] / b["train_s"],
        "overhead_trial": hit["number"],
        "c_trial_s": hit["seconds"],
        "b_train_s": b["train_s"],
        "b_load_s": b["load_s"],
        "sweep_ratio": c_wall / a_wall,
        "c_wall_s": c_wall,
        "a_wall_s": a_wall,
        "epochs_no_pruner": epochs_nop,
        "epochs_pruner": epochs_pruned,
        "epochs_saved": 1 - epochs_pruned / epochs_nop,
        "best_no_pruner": best,
        "best_pruner": best_pruned,
        "pruned_trials": sum(t["state"] == "PRUNED" for t in pruned),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and print the ratios; return them."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small smoke run (3 trials, 2 epochs, 64^3)")
    parser.add_argument("--trials", type=int, help="trials per sweep (default 8)")
    parser.add_argument("--epochs", type=int, help="epochs per trial (default 5)")
    parser.add_argument("--out", type=Path, help="run folder (default runs/bench/<time>)")
    parser.add_argument(
        "--unstaged", action="store_true", help="also run (c) with the data cache's stages off, the ratio before them"
    )
    args = parser.parse_args(argv)
    size = dict(QUICK if args.quick else FULL)
    size.update({k: v for k, v in (("trials", args.trials), ("epochs", args.epochs)) if v})
    from clara_hydra.runtime.demo import make_demo_data

    name = "bench_sweep_quick" if args.quick else "bench_sweep"
    data = make_demo_data(REPO / "data" / name, size["n_train"], size["n_val"], size["size"], 0, size["radius"])
    out = args.out or REPO / "runs" / "bench" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    conf = bench_conf(out / "conf")
    print(f"benchmark: {size}, {os.cpu_count()} CPUs, output {out}", flush=True)

    c_wall, c = sweep(conf, data, out / "c_sweep", size, ["hydra/sweeper/pruner=nop"])
    print(f"(c) sweep, no pruner: {c_wall:.1f} s, trials {[(t['number'], t['state']) for t in c]}", flush=True)
    print(f"    {data_counts(out / 'c_sweep')}")
    u_wall = None
    if args.unstaged:
        off = {"CLARA_HYDRA_CACHE_STAGES": "0"}
        u_wall, _ = sweep(conf, data, out / "c_unstaged", size, ["hydra/sweeper/pruner=nop"], off)
        print(f"(c) without stages: {u_wall:.1f} s, {data_counts(out / 'c_unstaged')}", flush=True)
    params = [plain_params(Path(t["job"]), 0, out / "a_plain" / str(t["number"])) for t in c]
    a_wall, a = clara_style(params, out / "a_plain")
    print(f"(a) Clara-style: {a_wall:.1f} s", flush=True)
    # The floor for c's per-trial time: a trial of (c) whose data came from the cache, trained in process.
    hit = min((t for t in c if t["number"] > 0 and t["state"] == "COMPLETE"), key=lambda t: t["caching_s"] or 0)
    import plain_trial

    b = plain_trial.run_trial(plain_params(Path(hit["job"]), 0, out / "b_plain"))
    print(f"(b) plain trial {hit['number']} in process: load {b['load_s']:.1f} s, train {b['train_s']:.1f} s")
    p_wall, pruned = sweep(conf, data, out / "c_pruner", size, PRUNER)
    print(f"(c') sweep with pruner: {p_wall:.1f} s", flush=True)
    r = summarize(c_wall, a_wall, c, b, hit, pruned)
    r.update({"size": size, "a_values": [x["best"] for x in a], "c_values": [t["value"] for t in c]})
    r.update({"b_value": b["best"], "pruner_wall_s": p_wall, "pruner": PRUNER})
    r["cpu_s"] = dict(CPU)
    if u_wall is not None:
        r.update({"unstaged_wall_s": u_wall, "unstaged_sweep_ratio": u_wall / a_wall})
    (out / "results.json").write_text(json.dumps(r, indent=2, default=str))
    print(
        f"\nper-trial overhead: trial {hit['number']} {r['c_trial_s']:.2f} s in the sweep vs "
        f"{r['b_train_s']:.2f} s plain = {r['overhead_ratio']:.3f}x (target <= 1.03)"
    )
    print(f"sweep wall time: {c_wall:.1f} s vs Clara-style {a_wall:.1f} s = {r['sweep_ratio']:.2f}x (target <= 0.6)")
    if u_wall is not None:
        print(f"  without cache stages: {u_wall:.1f} s = {r['unstaged_sweep_ratio']:.2f}x")
    cpu_a = CPU.get("a_plain") or float("nan")
    print("  CPU seconds (user+system, less sensitive to other jobs): " + ", ".join(
        f"{name} {sec:.1f} s = {sec / cpu_a:.2f}x" for name, sec in CPU.items() if name != "a_plain"
    ) + f" of Clara-style {cpu_a:.1f} s")  # fmt: skip
    print(f"pruning: {r['epochs_pruner']} vs {r['epochs_no_pruner']} epochs = {100 * r['epochs_saved']:.0f}% fewer "
          f"(target >= 40%); best Dice {r['best_pruner']:.4f} with vs {r['best_no_pruner']:.4f} without "
          f"({r['pruned_trials']} pruned)")  # fmt: skip
    print(f"results: {out / 'results.json'}")
    return r


if __name__ == "__main__":
    main()
