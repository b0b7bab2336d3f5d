"""The importable stand-ins for Clara's `#` expressions and lambda strings."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from monai.data import MetaTensor

from clara_hydra.errors import DataError
from clara_hydra.expressions import batch_meta, discard_output, model_from_checkpoint, parameters_of


def test_parameters_and_discard() -> None:
    model = torch.nn.Linear(2, 1)
    assert [p is q for p, q in zip(parameters_of(model), model.parameters(), strict=True)] == [True, True]
    assert discard_output({"loss": 1.0}) is None


def test_batch_meta_reads_metatensor_and_old_meta_dicts() -> None:
    new = {"image": MetaTensor(torch.zeros(1), meta={"filename_or_obj": "a.nii.gz"})}
    old = {"image": torch.zeros(1), "image_meta_dict": {"filename_or_obj": "b.nii.gz"}}
    assert [m["filename_or_obj"] for m in batch_meta([new, old])] == ["a.nii.gz", "b.nii.gz"]


def test_model_from_checkpoint_rebuilds_and_loads(tmp_path: Path) -> None:
    conf = {"train": {"model": {"_target_": "torch.nn.Linear", "in_features": 2, "out_features": 1}}}
    trained = torch.nn.Linear(2, 1)
    torch.save({"model": trained.state_dict(), "train_conf": conf}, tmp_path / "model.pt")
    model = model_from_checkpoint(str(tmp_path / "model.pt"))
    assert torch.equal(model.weight, trained.weight)
    torch.save({"model": trained.state_dict()}, tmp_path / "bare.pt")
    with pytest.raises(DataError, match=r"needs 'train_conf'"):
        model_from_checkpoint(str(tmp_path / "bare.pt"))
    with pytest.raises(DataError, match=r"ckpt_path='nope.pt': no such checkpoint.*MMAR_CKPT"):
        model_from_checkpoint("nope.pt")
