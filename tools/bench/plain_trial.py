"""One trial of the benchmark's search written as plain MONAI code: no Hydra, no clara_hydra, no Optuna.

It trains what ``python train.py`` trains for one trial of the converted seed example (same transforms,
network, loss, optimizer, engines and handlers), from a flat dict of values that ``sweep_speed.py`` reads
from that trial's composed config. Run as a script it is one Clara-style AutoML job (a fresh process that
imports everything and loads its data afresh); imported, it is the in-process floor.

    python tools/bench/plain_trial.py params.json     # prints one JSON line: best Dice and seconds
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from monai.data import CacheDataset, DataLoader, load_decathlon_datalist
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import (
    CheckpointSaver,
    ConfusionMatrix,
    LrScheduleHandler,
    MeanDice,
    StatsHandler,
    TensorBoardStatsHandler,
    ValidationHandler,
    from_engine,
)
from monai.inferers import SimpleInferer, SlidingWindowInferer
from monai.losses import DiceLoss, FocalLoss
from monai.networks.nets import UNet
from monai.transforms import (
    Activationsd,
    AsDiscreted,
    Compose,
    CropForegroundd,
    EnsureChannelFirstd,
    LoadImaged,
    RandCropByPosNegLabeld,
    RandGaussianNoised,
    RandShiftIntensityd,
    ScaleIntensityRanged,
    Spacingd,
    ToTensord,
)
from monai.utils import set_determinism

KEYS = ["image", "label"]
LOSSES = {"monai.losses.DiceLoss": DiceLoss, "monai.losses.FocalLoss": FocalLoss}


def _discard(_: Any) -> None:
    return None


def _transforms(p: dict[str, Any], train: bool) -> Compose:
    deterministic = [
        LoadImaged(keys=KEYS),
        EnsureChannelFirstd(keys=KEYS),
        Spacingd(**p["spacingd"]),
        ScaleIntensityRanged(**p["scale"]),
        CropForegroundd(**p["crop_foreground"]),
    ]
    random = [RandCropByPosNegLabeld(**p["crop"]), RandShiftIntensityd(**p["shift"]), RandGaussianNoised(**p["noise"])]
    return Compose([*deterministic, *(random if train else []), ToTensord(keys=KEYS)])


def run_trial(p: dict[str, Any]) -> dict[str, Any]:
    """Train and validate one trial; return its best validation Dice and where the time went.

    Args:
        p: the trial's values (see ``sweep_speed.plain_params``).

    Returns:
        ``{"best": float, "epochs": int, "load_s": float, "train_s": float}``.
    """
    t0 = time.perf_counter()
    set_determinism(seed=p["seed"])
    device = torch.device("cpu")
    files = {
        key: load_decathlon_datalist(p["dataset_json"], True, key, p["data_root"]) for key in ("training", "validation")
    }
    train_ds = CacheDataset(files["training"], _transforms(p, True), progress=False, **p["train_dataset"])
    val_ds = CacheDataset(files["validation"], _transforms(p, False), progress=False, **p["val_dataset"])
    t_loaded = time.perf_counter()
    # Same construction order as the runtime's builder (validation loader, model, training loader), so the
    # random streams line up.
    val_loader = DataLoader(val_ds, batch_size=1, shuffle=False, num_workers=p["num_workers"])
    model = UNet(**p["model"]).to(device)
    train_loader = DataLoader(train_ds, shuffle=True, num_workers=p["num_workers"], **p["train_loader"])
    loss = LOSSES[p["loss"]["_target_"]](**{k: v for k, v in p["loss"].items() if k != "_target_"})
    optimizer = torch.optim.Adam(model.parameters(), lr=p["lr"])
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, **p["lr_scheduler"])
    post = Compose(
        [
            Activationsd(keys="pred", softmax=True),
            AsDiscreted(keys=["pred", "label"], argmax=[True, False], to_onehot=2),
        ]
    )
    out = p["out_dir"]
    evaluator = SupervisedEvaluator(
        device=device,
        val_data_loader=val_loader,
        network=model,
        inferer=SlidingWindowInferer(**p["inferer"]),
        postprocessing=post,
        key_val_metric={"val_mean_dice": MeanDice(include_background=False, output_transform=from_engine(KEYS_PL))},
        additional_metrics={"val_acc": ConfusionMatrix(output_transform=from_engine(KEYS_PL), metric_name="accuracy")},
        val_handlers=[
            StatsHandler(output_transform=_discard),
            TensorBoardStatsHandler(log_dir=out, output_transform=_discard),
            CheckpointSaver(save_dir=out, save_dict={"model": model}, save_key_metric=True),
        ],
    )
    trainer = SupervisedTrainer(
        device=device,
        max_epochs=p["epochs"],
        train_data_loader=train_loader,
        network=model,
        optimizer=optimizer,
        loss_function=loss,
        inferer=SimpleInferer(),
        postprocessing=post,
        key_train_metric={"train_acc": ConfusionMatrix(output_transform=from_engine(KEYS_PL), metric_name="accuracy")},
        train_handlers=[
            LrScheduleHandler(lr_scheduler=scheduler, print_lr=True),
            ValidationHandler(validator=evaluator, interval=1, epoch_level=True),
            CheckpointSaver(
                save_dir=out,
                save_dict={"model": model, "optimizer": optimizer, "lr_scheduler": scheduler},
                save_final=True,
                save_interval=400,
            ),
            StatsHandler(tag_name="train_loss", output_transform=from_engine(["loss"], first=True)),
            TensorBoardStatsHandler(
                log_dir=out, tag_name="train_loss", output_transform=from_engine(["loss"], first=True)
            ),
        ],
    )
    trainer.run()
    done = time.perf_counter()
    return {
        "best": float(evaluator.state.best_metric),
        "epochs": int(trainer.state.epoch),
        "load_s": t_loaded - t0,
        "train_s": done - t_loaded,
    }


KEYS_PL = ["pred", "label"]


if __name__ == "__main__":
    params = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps(run_trial(params)))
