"""clara-hydra: NVIDIA Clara Train AutoML configs in the Hydra + Optuna + MONAI world.

Three parts with one-way imports: ``clara_hydra.convert`` (Clara JSON -> Hydra tree),
``clara_hydra.runtime`` (compose -> MONAI objects -> training) and ``clara_hydra.sweeper``
(the Optuna sweeper behind ``python train.py -m``). Shared leaf modules: ``errors``,
``keywords``, ``expressions``, ``data``.
"""

__version__ = "0.1.0"
