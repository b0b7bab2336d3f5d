"""Importable callables that stand for the Clara ``#`` expressions and lambda strings the converter maps.

Clara evaluated Python text from the config (``"#@model.parameters()"``, ``"lambda x: None"``); we never
``eval`` config text. The converter replaces each known pattern by a ``_target_`` node naming one of
these functions (or ``monai.handlers.from_engine``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any


def parameters_of(module: Any) -> Iterator[Any]:
    """Replaces Clara's ``"#@model.parameters()"``: the parameters of a ``torch.nn.Module``.

    Emitted as ``{_target_: clara_hydra.expressions.parameters_of, module: {_ref_: train.model}}``.

    Args:
        module: the module whose parameters an optimizer should own (the *same* object as ``train.model``).

    Returns:
        ``module.parameters()``.
    """
    return module.parameters()


def discard_output(x: Any) -> None:
    """Replaces Clara's ``"lambda x: None"`` (a handler output transform that logs nothing).

    Emitted with ``_partial_: true`` so the handler receives this function, not its result.

    Args:
        x: the engine output, ignored.
    """
    del x
    return None


def model_from_checkpoint(ckpt_path: str, model_path: str = "train.model", key: str = "model") -> Any:
    """Replaces a Clara 4.1 validation config's ``{"ckpt_path": "{MMAR_CKPT}"}`` model entry.

    As in Clara, the checkpoint carries the training config (``train_conf``, saved by the training run's
    ``CheckpointSaver`` from ``"@conf"``); the network is rebuilt from its ``train.model`` node and its weights
    are loaded from the checkpoint's ``model`` entry.

    Args:
        ckpt_path: a checkpoint written by ``python train.py`` (or Clara), relative to the start folder.
        model_path: where the network's node sits in ``train_conf``.
        key: the checkpoint entry holding the network's ``state_dict``.

    Returns:
        The network, weights loaded, on the CPU (the evaluator moves it to its device).

    Raises:
        DataError: the file is missing or holds no ``train_conf``/``model`` entry.
    """
    import torch
    from omegaconf import DictConfig, OmegaConf

    from clara_hydra.errors import DataError
    from clara_hydra.resolvers import original_cwd
    from clara_hydra.runtime.build import Builder

    path = Path(ckpt_path)
    path = path if path.is_absolute() else original_cwd() / path
    if not path.is_file():
        raise DataError(f"ckpt_path={ckpt_path!r}: no such checkpoint ({path}); set MMAR_CKPT=/path/to/model.pt")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)  # plain data only: never unpickle code
    if not isinstance(checkpoint, dict) or "train_conf" not in checkpoint or key not in checkpoint:
        found = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise DataError(
            f"ckpt_path={ckpt_path!r}: a checkpoint needs 'train_conf' (the training config) and {key!r} "
            f"entries to rebuild the network, found {found}"
        )
    conf = OmegaConf.create(checkpoint["train_conf"])
    assert isinstance(conf, DictConfig)
    model = Builder(conf, trusted=False).build(model_path)  # a checkpoint never grants permissions
    model.load_state_dict(checkpoint[key])
    return model


def batch_meta(batch: Any, key: str = "image") -> list[dict[str, Any]]:
    """Replaces Clara's ``"#monai.handlers.from_engine(['image_meta_dict'])"`` (e.g. ``MetricsSaver.batch_transform``).

    MONAI 1.x keeps the metadata on the image itself (``MetaTensor.meta``); the ``image_meta_dict`` entries of
    Clara-era batches no longer exist. Emitted with ``_partial_: true`` and ``key: image``.

    Args:
        batch: the engine's decollated batch (a list of dicts) or one dict.
        key: the data key whose metadata is wanted (``image`` for ``image_meta_dict``).

    Returns:
        One metadata dict per item (``filename_or_obj`` etc.); an old-style ``<key>_meta_dict`` is used when present.
    """
    items = batch if isinstance(batch, list | tuple) else [batch]
    out = []
    for item in items:
        old = item.get(f"{key}_meta_dict") if isinstance(item, dict) else None
        meta = old if old is not None else getattr(item[key], "meta", {})
        out.append(dict(meta))
    return out
