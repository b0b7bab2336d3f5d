"""Clara 4.0-era MONAI handlers that MONAI removed without a handler in their place."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def _identity(x: Any) -> Any:
    return x


class SegmentationSaver:
    """MONAI 0.5-0.8's ``SegmentationSaver`` handler (removed in MONAI 0.9), on today's ``SaveImage``.

    Clara 4.0/4.1 validation configs saved predictions with it. MONAI's history (``@deprecated`` message, see
    ``clara_hydra/convert/legacy/monai_history.json``) points at the ``SaveImage[d]`` transform, which is not a
    handler; this class keeps the handler's arguments and behaviour: on every completed iteration, each
    prediction of the batch is written with ``SaveImage`` under ``{input_image_name}_{output_postfix}{output_ext}``,
    resampled to the input's original affine when ``resample`` (the 0.8 default, True).

    Args:
        output_dir, output_postfix, output_ext, resample, mode, padding_mode, scale, dtype, output_dtype,
            squeeze_end_dims, data_root_dir, separate_folder: as MONAI 0.8's ``SegmentationSaver``.
        batch_transform: extracts the metadata of the batch (a dict of lists or a list of dicts); None
            or ``lambda x: x`` when the predictions carry their metadata (MONAI 1.x ``MetaTensor``).
        output_transform: extracts the predictions from ``engine.state.output``; by default each decollated
            output's ``"pred"``.
        name: logger name (default: the engine's logger).
    """

    def __init__(
        self,
        output_dir: str = "./",
        output_postfix: str = "seg",
        output_ext: str = ".nii.gz",
        resample: bool = True,
        mode: str = "nearest",
        padding_mode: str = "border",
        scale: int | None = None,
        dtype: Any = np.float64,
        output_dtype: Any = np.float32,
        squeeze_end_dims: bool = True,
        data_root_dir: str = "",
        separate_folder: bool = True,
        batch_transform: Callable[[Any], Any] | None = None,
        output_transform: Callable[[Any], Any] | None = None,
        name: str | None = None,
    ) -> None:
        from monai.transforms import SaveImage  # heavy import, only when a trial builds the handler

        self._saver = SaveImage(
            output_dir=output_dir,
            output_postfix=output_postfix,
            output_ext=output_ext,
            resample=resample,
            mode=mode,
            padding_mode=padding_mode,
            scale=scale,
            dtype=dtype,
            output_dtype=output_dtype,
            squeeze_end_dims=squeeze_end_dims,
            data_root_dir=data_root_dir,
            separate_folder=separate_folder,
            print_log=False,
        )
        self.batch_transform = batch_transform or _identity
        self.output_transform = output_transform or _identity
        self.logger = logging.getLogger(name)
        self._name = name

    def attach(self, engine: Any) -> None:
        """Run on every completed iteration of ``engine`` (an ignite engine: trainer or evaluator)."""
        from ignite.engine import Events

        if self._name is None:
            self.logger = engine.logger
        if not engine.has_event_handler(self, Events.ITERATION_COMPLETED):
            engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Any) -> None:
        """Save each prediction of the iteration's output."""
        preds = self.output_transform(engine.state.output)
        if isinstance(preds, dict):  # one batched dict: take its prediction
            preds = preds.get("pred", preds)
        items: Sequence[Any] = [p["pred"] if isinstance(p, dict) else p for p in preds]
        meta = self.batch_transform(engine.state.batch) if self.batch_transform is not _identity else None
        metas = _decollated(meta, len(items))
        for pred, m in zip(items, metas, strict=False):
            self._saver(pred, m)
        self.logger.info("model outputs saved into files.")


def _decollated(meta: Any, n: int) -> list[Any]:
    """Per-item metadata from a dict of lists, a list of dicts, or nothing (the predictions carry it)."""
    if isinstance(meta, dict):
        from monai.data import decollate_batch

        return list(decollate_batch(meta))
    if isinstance(meta, list | tuple) and all(isinstance(m, dict) for m in meta):
        return list(meta)
    return [None] * n


class TransformInverter:
    """MONAI 0.5-0.6's ``TransformInverter`` handler (removed in MONAI 0.7), on today's ``Invertd``.

    Clara 4.0 configs inverted the pre-transforms on the predictions with it. MONAI's history points at the
    ``Invertd`` transform, which is not a handler; this class keeps the handler's arguments and behaviour: when the
    model has run on an iteration, each output item's ``output_keys`` are inverted through ``transform`` using the
    operations applied to the batch item's ``batch_keys``, in place.

    Args:
        transform, output_keys, batch_keys, meta_keys, batch_meta_keys, meta_key_postfix, nearest_interp,
            to_tensor, device, post_func: as MONAI 0.6's ``TransformInverter`` (``batch_meta_keys`` is
            ``Invertd``'s ``orig_meta_keys``).
        num_workers: accepted for compatibility; today's ``Invertd`` runs in the calling thread.
    """

    def __init__(
        self,
        transform: Any,
        output_keys: str | Sequence[str] = "pred",
        batch_keys: str | Sequence[str] = "image",
        meta_keys: str | Sequence[str] | None = None,
        batch_meta_keys: str | Sequence[str] | None = None,
        meta_key_postfix: str = "meta_dict",
        nearest_interp: bool | Sequence[bool] = True,
        to_tensor: bool | Sequence[bool] = True,
        device: Any = "cpu",
        post_func: Callable[[Any], Any] | None = None,
        num_workers: int | None = 0,
    ) -> None:
        from monai.transforms import Invertd

        self.inverter = Invertd(
            keys=output_keys,
            transform=transform,
            orig_keys=batch_keys,
            meta_keys=meta_keys,
            orig_meta_keys=batch_meta_keys,
            meta_key_postfix=meta_key_postfix,
            nearest_interp=nearest_interp,
            to_tensor=to_tensor,
            device=device,
            post_func=post_func,
        )
        self.output_keys = [output_keys] if isinstance(output_keys, str) else list(output_keys)

    def attach(self, engine: Any) -> None:
        """Run when the model completed an iteration of ``engine`` (after the engine's decollation)."""
        from monai.engines.utils import IterationEvents

        engine.add_event_handler(IterationEvents.MODEL_COMPLETED, self)

    def __call__(self, engine: Any) -> None:
        """Invert the output keys of each decollated item, in place."""
        batch, output = engine.state.batch, engine.state.output
        if not isinstance(batch, list) or not isinstance(output, list):
            logging.getLogger(__name__).warning("TransformInverter needs decollated batch and output (lists)")
            return
        for b, o in zip(batch, output, strict=False):
            data = {**b, **o}
            ret = self.inverter(data)
            for key in self.output_keys:
                o[key] = ret.get(key)
