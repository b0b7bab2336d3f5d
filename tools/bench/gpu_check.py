"""GPU check (issue 14 item 5): the product on CUDA, in one run of at most ~8 minutes on one lent GPU machine.

    bash tools/bench/gpu_check.sh [OUT_DIR]             # on the GPU machine; OUT_DIR defaults to $OUT
    bash tools/bench/gpu_check.sh --dry-run [OUT_DIR]   # on the CPU, every step at a tiny size: the plumbing

Steps, each a fresh ``train.py`` process (group) with its own timeout, all within one overall budget
(``--budget``, default 450 s), so one hang cannot eat the device time:

1. ``gpu``: nvidia-smi's name/memory/driver, torch's CUDA version and GPU count.
2. ``data``: synthetic spheres (``make_demo_data``) at 128^3 voxels, 24 training + 4 validation volumes.
3. ``amp`` / ``fp32``: the quickstart at GPU size (crops of 96^3, 16 per volume, 8 volumes a batch: 128 crops,
   ~171 MB saved for backward per crop in fp32 with the seed's UNet, so ~25-35 GB; 4 iterations an epoch):
   s/epoch of each, their ratio, and where the data cache went (GPU-resident or host).
4. ``cache``: the GPU-resident data cache's memory: the training dataset built through the runtime's
   ``DataCache`` on ``cuda``, ``torch.cuda.memory_allocated`` before/after and the bytes of the items.
5. ``single_gpu``: ``multi_gpu=true`` on one visible GPU: one process, the network moved by DevicePolicy.
6. ``sweep_0_0``: ``hydra.sweeper.gpus="0:0"``: two workers share GPU 0 (4 trials), nvidia-smi utilisation.
7. ``oom``: a one-worker sweep whose first trial asks for far too much memory (a UNet 8x as wide): FAIL
   ``out of memory`` with asked/free, and the worker goes on with its next trial (the seed's width).
8. ``ddp``: ``multi_gpu=true`` on every GPU (skipped with a line when there is only one).

nvidia-smi samples utilisation and memory every 0.5 s during all steps; each step gets its mean/max.
Writes ``OUT/gpu_check.json``, ``OUT/gpu_check.md``, ``OUT/util.csv`` and ``OUT/logs.tar.gz`` (every step's log,
trial summaries and overrides), also after a step failed or timed out; the steps run in ``--work`` (default OUT,
or /tmp/clara_gpu_check when OUT is the device machine's ``$OUT``, which gives back only a few small files).
Sizes: ``GPU_CHECK_BATCH`` (volumes per batch, default 8), ``GPU_CHECK_SAMPLES`` (crops per volume, default 16),
``GPU_CHECK_EPOCHS`` (default 5).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_report import phase_gpu, read_util  # noqa: E402  (a sibling module of this script)

REPORT_RESERVE_S = 10.0  # kept back from the budget for the summary
MIN_STEP_S = 20.0  # a step with less time left is skipped, not started
# The oom sweep (one worker, random sampler with this seed, 3 trials): trial 0 is the config's own values (the
# quickstart's width: it completes and fills the cache), trials 1 and 2 draw choice index 0, the 8x wide UNet
# (seen in the dry run, which draws the same indices: its choice has the same length), so trial 2 shows the
# worker going on after trial 1 ran out of memory.
OOM_SEED = 0


@dataclass(frozen=True)
class Size:
    """How big each step is: the GPU sizes, or the dry run's tiny CPU ones."""

    volume: int
    n_train: int
    n_val: int
    radius: tuple[float, float]
    crop: int
    samples: int
    batch: int
    roi: int
    channels: tuple[int, ...]
    epochs: int
    sweep_epochs: int
    sweep_trials: int
    oom_channels: tuple[int, ...]  # 8x the seed's: ~8 x 171 MB saved for backward per 96^3 crop (fp32)
    timeouts: dict[str, float] = field(default_factory=dict)


GPU = Size(
    volume=128, n_train=32, n_val=4, radius=(20.0, 36.0), crop=96, samples=int(os.environ.get("GPU_CHECK_SAMPLES", 16)),
    batch=int(os.environ.get("GPU_CHECK_BATCH", 8)), roi=96, channels=(16, 32, 64, 128, 256),
    epochs=int(os.environ.get("GPU_CHECK_EPOCHS", 5)), sweep_epochs=3, sweep_trials=4,
    oom_channels=(128, 256, 512, 1024, 2048),
    timeouts={"gpu": 60, "data": 90, "amp": 110, "fp32": 130, "cache": 60, "single_gpu": 70,
              "sweep_0_0": 150, "oom": 100, "ddp": 120},
)  # fmt: skip
CPU = Size(
    volume=32, n_train=4, n_val=2, radius=(4.0, 8.0), crop=16, samples=1, batch=2, roi=32, channels=(4, 8, 16),
    epochs=1, sweep_epochs=1, sweep_trials=2, oom_channels=(8, 16, 32),
    timeouts={"gpu": 60, "data": 60, "amp": 150, "fp32": 150, "cache": 120, "single_gpu": 150,
              "sweep_0_0": 300, "oom": 300, "ddp": 300},
)  # fmt: skip
STEPS = ("gpu", "data", "amp", "fp32", "cache", "single_gpu", "sweep_0_0", "oom", "ddp")


# -- running one step ------------------------------------------------------------------------------------


def run_step(argv: list[str], timeout: float, log: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``argv`` in its own process group, output into ``log``; on timeout the whole group is stopped
    (SIGINT, then SIGKILL after 10 s): rank processes, sweep workers and DataLoader workers go with it."""
    t0 = time.time()
    with log.open("w") as out:
        proc = subprocess.Popen(
            argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env or None
        )
        timed_out = False
        try:
            rc = proc.wait(timeout=max(timeout, 1.0))
        except subprocess.TimeoutExpired:
            timed_out = True
            for sig, grace in ((signal.SIGINT, 10.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
            rc = proc.returncode if proc.returncode is not None else -9
    return {"rc": rc, "timed_out": timed_out, "wall_s": round(time.time() - t0, 1), "timeout_s": round(timeout, 1)}


def tail(log: Path, n: int = 6) -> list[str]:
    """The last lines of a step's log (for the summary of a failed step)."""
    try:
        return [line[:300] for line in log.read_text(errors="replace").splitlines()[-n:]]
    except OSError:
        return []


# -- reading what a step left ----------------------------------------------------------------------------


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


_CACHE_ON = re.compile(r"cached data on (\S+) \(([\d.]+) GB\)")
_CACHE_HOST = re.compile(r"([\d.]+) GB of cached data stays in host memory \(GPU has ([\d.]+) GB free\)")


def cache_lines(text: str) -> dict[str, Any]:
    """Where the data cache put its items, from a run's log lines (``runtime/cache.py``'s messages)."""
    on = [{"device": d, "gb": float(gb)} for d, gb in _CACHE_ON.findall(text)]
    host = [{"gb": float(gb), "gpu_free_gb": float(free)} for gb, free in _CACHE_HOST.findall(text)]
    return {"on_device": on, "in_host_memory": host}


def run_text(step_dir: Path, log: Path) -> str:
    """A step's console log and its job folders' log files, together."""
    parts = [log.read_text(errors="replace")] if log.exists() else []
    parts += [p.read_text(errors="replace") for p in sorted(step_dir.rglob("*.log"))] if step_dir.exists() else []
    return "\n".join(parts)


def trial_result(job: Path, epochs: int) -> dict[str, Any]:
    """One run's trial_summary.json, reduced to what the check reports."""
    s = read_json(job / "trial_summary.json")
    if not s:
        return {"summary": None}
    seconds = s.get("seconds") or {}
    training, validating = float(seconds.get("training", 0.0)), float(seconds.get("validating", 0.0))
    return {
        "status": s.get("status"),
        "error": s.get("error"),
        "device": s.get("device"),
        "amp": s.get("amp"),
        "best": s.get("best_value"),
        "world_size": s.get("world_size", 1),
        "rank_devices": s.get("rank_devices"),
        "worker": (s.get("devices") or {}).get("worker"),
        "gpus": (s.get("devices") or {}).get("gpus"),
        "s_per_epoch": round((training + validating) / epochs, 3) if epochs else None,
        "train_s_per_epoch": round(training / epochs, 3) if epochs else None,
        "seconds": seconds,
        "channels": _override(job, "channels"),
        "started": _mtime(job / ".hydra" / "config.yaml"),
        "ended": _mtime(job / "trial_summary.json"),
    }


def _override(job: Path, key: str) -> str | None:
    """The value a job's ``.hydra/overrides.yaml`` gives ``key`` (what the sweeper chose), as written."""
    try:
        lines = (job / ".hydra" / "overrides.yaml").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith(f"- {key}="):
            return line.split("=", 1)[1].strip().strip("'\"")
    return None


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def sweep_trials(sweep_dir: Path, epochs: int) -> list[dict[str, Any]]:
    """Every trial folder of a sweep (``<sweep>/<n>/``), in trial order."""
    jobs = sorted((p for p in sweep_dir.glob("[0-9]*") if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
    return [{"trial": int(p.name), **trial_result(p, epochs)} for p in jobs]


def oom_outcome(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """Which trials ended ``out of memory`` and whether their worker took another trial afterwards."""
    ooms = [t for t in trials if "out of memory" in str(t.get("error") or "").lower()]
    went_on = any(
        o.get("ended") is not None
        and any(
            t is not o and t.get("worker") == o.get("worker") and (t.get("started") or 0) >= o["ended"] - 1
            for t in trials
        )
        for o in ooms
    )
    return {
        "oom_trials": [t["trial"] for t in ooms],
        "oom_messages": [t.get("error") for t in ooms],
        "completed_trials": [t["trial"] for t in trials if t.get("status") == "completed"],
        "worker_went_on": went_on,
    }


# -- the steps -------------------------------------------------------------------------------------------


class Check:
    """One run of the GPU check: the steps, their outcomes, the nvidia-smi sampler and the budget."""

    def __init__(self, out: Path, dry_run: bool, budget: float, steps: list[str]) -> None:
        self.out = out
        self.dry_run = dry_run
        self.size = CPU if dry_run else GPU
        self.deadline = time.time() + budget
        self.steps = steps
        self.py = os.environ.get("PYTHON", sys.executable)
        self.data = out / "data"
        self.results: dict[str, Any] = {}
        self.phases: dict[str, tuple[float, float]] = {}
        self.gpu_count = 0
        self.smi: subprocess.Popen[bytes] | None = None

    # plumbing

    def left(self) -> float:
        return self.deadline - time.time() - REPORT_RESERVE_S

    def train_args(
        self,
        *extra: str,
        epochs: int | None = None,
        batch: int | None = None,
        multirun: bool = False,
        channels: bool = True,
    ) -> list[str]:
        s = self.size
        crop = f"[{s.crop},{s.crop},{s.crop}]"
        roi = f"[{s.roi},{s.roi},{s.roi}]"
        return [
            self.py, "train.py", *(["-m"] if multirun else []), "experiment=quickstart", f"DATA_ROOT={self.data}",
            f"epochs={epochs or s.epochs}", *([f"channels={_list(s.channels)}"] if channels else []),
            f"train.pre_transforms.rand_crop_by_pos_neg_labeld.spatial_size={crop}",
            f"train.pre_transforms.rand_crop_by_pos_neg_labeld.num_samples={s.samples}",
            f"train.dataloader.batch_size={batch or s.batch}",
            f"validate.inferer.roi_size={roi}", "validate.inferer.sw_batch_size=4",
            *extra,
        ]  # fmt: skip

    def step(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> dict[str, Any] | None:
        """Run one step's command within its timeout and the budget; None when it was not started."""
        if name not in self.steps:
            self.results[name] = {"status": "skipped", "why": "not selected (--steps)"}
            return None
        left = self.left()
        if left < MIN_STEP_S:
            self.results[name] = {"status": "not_run", "why": f"budget spent ({left:.0f} s left)"}
            print(f"gpu_check: {name}: not run, budget spent", flush=True)
            return None
        timeout = min(self.size.timeouts.get(name, 120.0), left)
        if name not in ("gpu", "data"):  # a rerun into the same OUT starts its job folders afresh
            shutil.rmtree(self.out / name, ignore_errors=True)
        print(f"gpu_check: {name} (timeout {timeout:.0f} s) ...", flush=True)
        t0 = time.time()
        run = run_step(argv, timeout, self.out / f"{name}.log", env)
        self.phases[name] = (t0, time.time())
        return run

    def finish(
        self, name: str, run: dict[str, Any], ok: bool, why: str = "", rc_matters: bool = True, **figures: Any
    ) -> None:
        """Record a step: ok when its check holds and (unless ``rc_matters`` is false) its command exited 0."""
        status = "timeout" if run["timed_out"] else ("ok" if ok and (run["rc"] == 0 or not rc_matters) else "failed")
        entry: dict[str, Any] = {"status": status, **run, **figures}
        if status != "ok":
            entry["why"] = why or ("timed out" if run["timed_out"] else f"exit code {run['rc']}")
            entry["log_tail"] = tail(self.out / f"{name}.log")
        self.results[name] = entry
        print(f"gpu_check: {name}: {status}{' (' + entry['why'] + ')' if status != 'ok' else ''}", flush=True)

    def start_sampler(self) -> None:
        if self.dry_run or shutil.which("nvidia-smi") is None:
            return
        query = ["nvidia-smi", "--query-gpu=timestamp,utilization.gpu,memory.used", "--format=csv,noheader,nounits"]
        with (self.out / "util.csv").open("w") as f:
            self.smi = subprocess.Popen([*query, "-lms", "500"], stdout=f, stderr=subprocess.DEVNULL)

    def stop_sampler(self) -> None:
        if self.smi is not None:
            self.smi.terminate()
            try:
                self.smi.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.smi.kill()

    # steps

    def gpu(self) -> None:
        code = (
            "import json, torch; print(json.dumps({'torch': torch.__version__, 'cuda': torch.version.cuda, "
            "'available': torch.cuda.is_available(), 'count': torch.cuda.device_count(), "
            "'names': [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]}))"
        )
        run = self.step("gpu", [self.py, "-c", code])
        if run is None:
            return
        info = _last_json(self.out / "gpu.log")
        self.gpu_count = int(info.get("count") or 0)
        smi = ""
        if shutil.which("nvidia-smi"):
            q = ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]
            try:
                smi = subprocess.run(q, capture_output=True, text=True, timeout=30).stdout.strip()
            except (subprocess.TimeoutExpired, OSError) as exc:
                smi = f"nvidia-smi failed: {exc}"
        ok = self.dry_run or bool(info.get("available"))
        self.finish("gpu", run, ok, "torch sees no CUDA device", torch=info, nvidia_smi=smi, dry_run=self.dry_run)

    def make_data(self) -> None:
        s = self.size
        code = (
            "import sys; from clara_hydra.runtime.demo import make_demo_data; "
            f"make_demo_data(sys.argv[1], n_train={s.n_train}, n_val={s.n_val}, size={s.volume}, "
            f"radius={s.radius!r})"
        )
        run = self.step("data", [self.py, "-c", code, str(self.data)])
        if run is not None:
            ok = (self.data / "dataset.json").is_file()
            self.finish("data", run, ok, volumes=f"{s.n_train}+{s.n_val} of {s.volume}^3", path=str(self.data))

    def precision(self, mode: str) -> None:
        job = self.out / mode
        run = self.step(mode, self.train_args(f"amp={str(mode == 'amp').lower()}", f"hydra.run.dir={job}"))
        if run is None:
            return
        r = trial_result(job, self.size.epochs)
        want = "cpu" if self.dry_run else "cuda"
        ok = r.get("status") == "completed" and str(r.get("device", "")).startswith(want)
        ok = ok and (self.dry_run or r.get("amp") is (mode == "amp"))
        s = self.size
        self.finish(
            mode, run, ok, f"status {r.get('status')}, device {r.get('device')}: {r.get('error') or 'see log'}",
            result=r, crops=f"{s.batch} volumes x {s.samples} crops of {s.crop}^3 a batch",
            cache=cache_lines(run_text(job, self.out / f"{mode}.log")),
        )  # fmt: skip

    def cache(self) -> None:
        job = self.out / "cache"
        overrides = self.train_args(f"hydra.run.dir={job}")[2:]
        run = self.step("cache", [self.py, str(Path(__file__).with_name("gpu_cache_probe.py")), *overrides])
        if run is None:
            return
        probe = _last_json(self.out / "cache.log")
        ok = bool(probe) and (self.dry_run or bool(probe.get("on_device")))
        self.finish("cache", run, ok, "the cached items did not move to the GPU (see log)", probe=probe)

    def single_gpu(self) -> None:
        job = self.out / "single_gpu"
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "0"} if not self.dry_run else None
        run = self.step("single_gpu", self.train_args("multi_gpu=true", f"hydra.run.dir={job}", epochs=2), env)
        if run is None:
            return
        r = trial_result(job, 2)
        want = "cpu" if self.dry_run else "cuda"
        ok = r.get("status") == "completed" and str(r.get("device", "")).startswith(want) and r["world_size"] == 1
        self.finish("single_gpu", run, ok, f"status {r.get('status')}: {r.get('error') or 'see log'}", result=r)

    def sweep(self) -> None:
        s = self.size
        sweep = self.out / "sweep_0_0"
        argv = self.train_args(
            'hydra.sweeper.gpus="0:0"', f"hydra.sweeper.n_trials={s.sweep_trials}",
            f"hydra.sweeper.study_name=gpu_check_sweep_{int(time.time())}", f"hydra.sweep.dir={sweep}",
            epochs=s.sweep_epochs, batch=max(1, s.batch // 2), multirun=True,
        )  # fmt: skip
        run = self.step("sweep_0_0", argv)
        if run is None:
            return
        trials = sweep_trials(sweep, s.sweep_epochs)
        workers = sorted({str(t.get("worker")) for t in trials if t.get("worker")})
        done = [t for t in trials if t.get("status") == "completed"]
        ok = len(trials) == s.sweep_trials and len(done) == len(trials) and len(workers) == 2
        self.finish(
            "sweep_0_0", run, ok, f"{len(done)}/{s.sweep_trials} trials completed by workers {workers}",
            workers=workers, trials=[_brief(t) for t in trials],
        )  # fmt: skip

    def oom(self) -> None:
        s = self.size
        sweep = self.out / "oom"
        argv = self.train_args(
            'hydra.sweeper.gpus="0"', "hydra.sweeper.n_trials=3", "hydra/sweeper/sampler=random",
            f"hydra.sweeper.sampler.seed={OOM_SEED}", f"hydra.sweeper.study_name=gpu_check_oom_{int(time.time())}",
            f"hydra.sweeper.params.channels='choice({_list(s.oom_channels)}, {_list(s.channels)})'",
            f"hydra.sweep.dir={sweep}", epochs=1, multirun=True, channels=False,
        )  # fmt: skip
        run = self.step("oom", argv)
        if run is None:
            return
        trials = sweep_trials(sweep, 1)
        outcome = oom_outcome(trials)
        if self.dry_run:  # no CUDA: nothing runs out of memory; the sweep and its reading are what is checked
            ok, why = len(trials) == 3, f"{len(trials)} of 3 trials left a folder"
        else:
            ok = bool(outcome["oom_trials"]) and outcome["worker_went_on"]
            why = "no trial ended out of memory" if not outcome["oom_trials"] else "the worker did not go on"
        # the trials' records are the proof; a sweep whose trials failed may end with another exit code
        self.finish("oom", run, ok, why, rc_matters=self.dry_run, **outcome, trials=[_brief(t) for t in trials])

    def ddp(self) -> None:
        if not self.dry_run and self.gpu_count < 2:
            self.results["ddp"] = {
                "status": "skipped",
                "why": f"{self.gpu_count} GPU: a DDP trial needs 2 or more (one process per GPU)",
            }
            print(f"gpu_check: ddp: skipped ({self.gpu_count} GPU)", flush=True)
            return
        job = self.out / "ddp"
        extra = ["++nproc_per_node=2"] if self.dry_run else []
        run = self.step("ddp", self.train_args("multi_gpu=true", *extra, f"hydra.run.dir={job}", epochs=2))
        if run is None:
            return
        r = trial_result(job, 2)
        ranks = 2 if self.dry_run else self.gpu_count
        ok = r.get("status") == "completed" and r.get("world_size") == ranks
        self.finish("ddp", run, ok, f"status {r.get('status')}, world_size {r.get('world_size')}", result=r)

    # all together

    def run(self) -> dict[str, Any]:
        self.start_sampler()
        steps = [
            ("gpu", self.gpu), ("data", self.make_data), ("amp", lambda: self.precision("amp")),
            ("fp32", lambda: self.precision("fp32")), ("cache", self.cache), ("single_gpu", self.single_gpu),
            ("sweep_0_0", self.sweep), ("oom", self.oom), ("ddp", self.ddp),
        ]  # fmt: skip
        try:
            for name, step in steps:
                try:
                    step()
                except Exception as exc:  # a bug in reading one step's results must not lose the others
                    self.results[name] = {"status": "failed", "why": f"gpu_check itself: {type(exc).__name__}: {exc}"}
                    print(f"gpu_check: {name}: failed in the check itself: {exc!r}", flush=True)
        finally:
            self.stop_sampler()
        return self.summary()

    def summary(self) -> dict[str, Any]:
        util = read_util(self.out / "util.csv")
        for name, (a, b) in self.phases.items():
            if name in self.results:
                self.results[name]["gpu_util"] = phase_gpu(a, b, util) if util else None
        amp, fp32 = (self.results.get(m, {}).get("result", {}).get("s_per_epoch") for m in ("amp", "fp32"))
        return {
            "mode": "dry-run (CPU, tiny sizes)" if self.dry_run else "GPU",
            "size": {k: v for k, v in asdict(self.size).items() if k != "timeouts"},
            "amp_over_fp32": round(amp / fp32, 3) if amp and fp32 else None,
            "steps": {name: self.results.get(name, {"status": "not_run", "why": "not reached"}) for name in STEPS},
            "ok": all(self.results.get(n, {}).get("status") in ("ok", "skipped") for n in STEPS),
        }


def _last_json(log: Path) -> dict[str, Any]:
    """The last line of a log that is a JSON object (what a probe prints)."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return {}
    for line in reversed(lines):
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            return value if isinstance(value, dict) else {}
    return {}


def _brief(t: dict[str, Any]) -> dict[str, Any]:
    keys = ("trial", "status", "error", "device", "worker", "gpus", "best", "s_per_epoch", "channels")
    return {k: t.get(k) for k in keys}


def _list(values: tuple[int, ...]) -> str:
    return f"[{','.join(map(str, values))}]"


def markdown(result: dict[str, Any]) -> str:
    """The summary as a short markdown table (for README)."""
    lines = [f"# GPU check ({result['mode']})", "", "| step | status | figures |", "|---|---|---|"]
    for name, r in result["steps"].items():
        figures = []
        run = r.get("result") or {}
        if run.get("s_per_epoch") is not None:
            figures.append(f"{run['s_per_epoch']} s/epoch, device {run.get('device')}, best {run.get('best')}")
        if r.get("gpu_util"):
            g = r["gpu_util"]
            figures.append(f"util mean {g['util_mean']}% max {g['util_max']}%, mem max {g['mem_max_mib']} MiB")
        if r.get("probe"):
            figures.append(json.dumps(r["probe"]))
        if r.get("trials"):
            figures.append(", ".join(f"#{t['trial']} {t.get('status')} ({t.get('worker')})" for t in r["trials"]))
        if r.get("oom_messages"):
            figures.append("; ".join(map(str, r["oom_messages"])))
        if r.get("why"):
            figures.append(str(r["why"]))
        lines.append(f"| {name} | {r.get('status')} | {'; '.join(figures)} |")
    if result.get("amp_over_fp32") is not None:
        lines += ["", f"AMP / fp32 s/epoch: {result['amp_over_fp32']}"]
    return "\n".join(lines) + "\n"


def deliver(work: Path, out: Path, result: dict[str, Any]) -> list[Path]:
    """Write the summary into ``out``: gpu_check.json, gpu_check.md, util.csv and logs.tar.gz (every step's log,
    trial_summary.json and overrides; no data, no checkpoints). Four files: a device machine's $OUT gives back
    at most 8, two folders down."""
    import tarfile

    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out / "gpu_check.md").write_text(markdown(result))
    written = [out / "gpu_check.json", out / "gpu_check.md"]
    if (work / "util.csv").exists() and work != out:
        shutil.copyfile(work / "util.csv", out / "util.csv")
    if (out / "util.csv").exists():
        written.append(out / "util.csv")
    wanted = [*work.glob("*.log")]
    for name in STEPS:
        if name != "data" and (work / name).is_dir():
            wanted += [f for f in (work / name).rglob("*") if f.name in ("trial_summary.json", "overrides.yaml")]
            wanted += [f for f in (work / name).rglob("*.log") if f.parent != work]
    with tarfile.open(out / "logs.tar.gz", "w:gz") as tar:
        for f in sorted(set(wanted)):
            if f.is_file() and f.stat().st_size < 2**20:
                tar.add(f, arcname=str(f.relative_to(work)))
    written.append(out / "logs.tar.gz")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", help="where the summary goes (default $OUT, else runs/gpu_check/<time>)")
    parser.add_argument(
        "--work", help="where the steps run (data, job folders); default OUT itself, or /tmp/clara_gpu_check when "
        "OUT is the device machine's $OUT (it gives back only a few files)"
    )  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: check the plumbing")
    parser.add_argument("--budget", type=float, default=450.0, help="seconds for all steps together")
    parser.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated subset of {','.join(STEPS)}")
    args = parser.parse_args(argv)
    device_out = os.environ.get("OUT")
    out = Path(args.out or device_out or REPO / "runs" / "gpu_check" / time.strftime("%Y-%m-%d_%H-%M-%S"))
    if args.work:
        work = Path(args.work)
    elif device_out and out.resolve() == Path(device_out).resolve():
        work = Path("/tmp/clara_gpu_check")
    else:
        work = out
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        parser.error(f"unknown steps {unknown}; the steps are {', '.join(STEPS)}")
    if not args.dry_run and shutil.which("nvidia-smi") is None:
        print("gpu_check: nvidia-smi not found: no GPU here (use --dry-run on the CPU)", file=sys.stderr)
        return 3
    work.mkdir(parents=True, exist_ok=True)
    result = Check(work.resolve(), args.dry_run, args.budget, steps).run()
    deliver(work.resolve(), out.resolve(), result)
    print(markdown(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
