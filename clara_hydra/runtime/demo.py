"""A synthetic MSD-style segmentation data set: bright spheres in noise, small enough for a CPU demo.

Layout (as the Medical Segmentation Decathlon): ``imagesTr/*.nii.gz``, ``labelsTr/*.nii.gz`` and a
``dataset.json`` with ``training`` and ``validation`` lists of ``{"image": ..., "label": ...}`` relative to
the folder. Intensities look like CT (Hounsfield units) so the seed example's ``ScaleIntensityRanged``
(``a_min=-57, a_max=164``) makes sense on it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

BACKGROUND_HU = 0.0
SPHERE_HU = 120.0
NOISE_SD = 30.0


def _volume(rng: Any, size: int, radius: tuple[float, float] = (5.0, 9.0)) -> tuple[Any, Any]:
    """One image/label pair: 1-3 spheres of radius ``radius`` voxels (5-9), Gaussian noise everywhere."""
    import numpy as np

    grid = np.stack(np.meshgrid(*(np.arange(size),) * 3, indexing="ij")).astype(np.float32)
    label = np.zeros((size,) * 3, dtype=np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        r = float(rng.uniform(*radius))
        centre = rng.uniform(r + 2, size - r - 2, size=3).astype(np.float32)
        dist = np.sqrt(((grid - centre[:, None, None, None]) ** 2).sum(axis=0))
        label[dist <= r] = 1
    image = np.where(label > 0, SPHERE_HU, BACKGROUND_HU) + rng.normal(0.0, NOISE_SD, size=label.shape)
    return image.astype(np.float32), label


def make_demo_data(
    root: str | os.PathLike[str],
    n_train: int = 8,
    n_val: int = 4,
    size: int = 48,
    seed: int = 0,
    radius: tuple[float, float] = (5.0, 9.0),
) -> Path:
    """Write the demo data set into ``root`` (deterministic for a given seed) and return ``root``.

    Safe when several processes start at once: each writes into its own temporary folder and the first
    rename wins.

    Args:
        root: target folder; created. Left alone when it already holds a ``dataset.json``.
        n_train: number of training volumes.
        n_val: number of validation volumes.
        size: edge length of the cubic volumes, in voxels (1 mm spacing).
        seed: NumPy random seed.
        radius: range of the sphere radii in voxels (the benchmark's 128^3 volumes use larger ones).

    Returns:
        The folder that holds ``dataset.json``.

    Example:
        >>> make_demo_data("/tmp/demo", n_train=2, n_val=1, size=32)  # doctest: +SKIP
    """
    import nibabel as nib
    import numpy as np

    root = Path(root)
    if (root / "dataset.json").is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "imagesTr").mkdir(parents=True)
    (tmp / "labelsTr").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    entries = []
    for i in range(n_train + n_val):
        image, label = _volume(rng, size, radius)
        name = f"sphere_{i:03d}.nii.gz"
        nib.save(nib.Nifti1Image(image, np.eye(4)), tmp / "imagesTr" / name)
        nib.save(nib.Nifti1Image(label, np.eye(4)), tmp / "labelsTr" / name)
        entries.append({"image": f"imagesTr/{name}", "label": f"labelsTr/{name}"})
    meta = {
        "name": "SyntheticSpheres",
        "description": f"clara-hydra demo: bright spheres in noise, {size}^3 voxels, seed {seed}",
        "labels": {"0": "background", "1": "sphere"},
        "modality": {"0": "CT"},
        "numTraining": n_train,
        "training": entries[:n_train],
        "validation": entries[n_train:],
    }
    (tmp / "dataset.json").write_text(json.dumps(meta, indent=2))
    try:
        tmp.rename(root)
    except OSError:
        # Another process won the race, or an empty/partial folder is in the way.
        if not (root / "dataset.json").is_file():
            root.mkdir(parents=True, exist_ok=True)
            for sub in ("imagesTr", "labelsTr"):
                shutil.copytree(tmp / sub, root / sub, dirs_exist_ok=True)
            shutil.copy2(tmp / "dataset.json", root / "dataset.json")  # last: marks the set complete
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def all_foreground_dice(root: str | os.PathLike[str], key: str = "validation") -> float:
    """Mean Dice of the trivial prediction "everything is foreground" on the ``key`` list: the baseline to beat.

    For one volume it is ``2|G| / (|G| + N)`` (``G`` the label's foreground, ``N`` all voxels), as MONAI's
    ``MeanDice(include_background=False)`` would score it.
    """
    import nibabel as nib
    import numpy as np

    root = Path(root)
    entries = json.loads((root / "dataset.json").read_text())[key]
    scores = []
    for entry in entries:
        image: Any = nib.load(root / entry["label"])
        label = np.asarray(image.dataobj) > 0
        scores.append(2.0 * label.sum() / (label.sum() + label.size))
    return float(np.mean(scores))
