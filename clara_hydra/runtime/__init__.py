"""Run converted configs: build the object graph (:mod:`.build`) and train/validate it (:mod:`.task`).

Importing this package is cheap (no torch/MONAI) and registers the OmegaConf resolvers the converted tree
uses (``${clara.job_dir:models}``, ``${clara.demo_data:...}``).
"""

from __future__ import annotations

from clara_hydra import resolvers as _resolvers  # noqa: F401  (registers the resolvers)
