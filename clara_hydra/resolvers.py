"""OmegaConf resolvers used by converted configs; registered when this module is imported.

Kept free of heavy imports so `python train.py --help` and `--cfg job` stay fast: the demo-data
resolver imports NumPy/nibabel only when it actually has to write the data set.

- ``${clara.job_dir:models}``: ``<hydra job output dir>/models`` when Hydra runs a job, else ``<cwd>/models``.
  The converter emits ``MMAR_CKPT_DIR: ${clara.job_dir:models}`` so checkpoints land in the job's folder.
- ``${clara.demo_data:data/demo}``: the absolute path of the synthetic demo data set, generated there on
  first use (relative paths are taken from the directory the command was started in).
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

JOB_DIR_RESOLVER = "clara.job_dir"
DEMO_DATA_RESOLVER = "clara.demo_data"


def original_cwd() -> Path:
    """The directory the user started the command in (Hydra may have changed the working directory)."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        from hydra.utils import get_original_cwd

        return Path(get_original_cwd())
    return Path.cwd()


def job_dir(sub: str = "") -> str:
    """``<hydra job output dir>/<sub>`` inside a Hydra job, else ``<cwd>/<sub>``."""
    from hydra.core.hydra_config import HydraConfig

    base = Path.cwd()
    if HydraConfig.initialized():
        try:
            base = Path(HydraConfig.get().runtime.output_dir)
        except Exception:  # `--cfg job --resolve` prints before a job folder exists (output_dir is still ???)
            base = Path.cwd()
    return str(base / sub) if sub else str(base)


def demo_data(folder: str = "data/demo") -> str:
    """Absolute path of the synthetic demo data set in ``folder``, generated there when it is missing."""
    root = Path(folder)
    if not root.is_absolute():
        root = original_cwd() / root
    if not (root / "dataset.json").is_file():
        from clara_hydra.runtime.demo import make_demo_data

        make_demo_data(root)
    return os.fspath(root)


def register() -> None:
    """Register the resolvers (idempotent)."""
    if not OmegaConf.has_resolver(JOB_DIR_RESOLVER):
        OmegaConf.register_new_resolver(JOB_DIR_RESOLVER, job_dir)
    if not OmegaConf.has_resolver(DEMO_DATA_RESOLVER):
        OmegaConf.register_new_resolver(DEMO_DATA_RESOLVER, demo_data)


register()
