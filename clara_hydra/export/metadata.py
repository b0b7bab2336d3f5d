"""``configs/metadata.json`` of an exported bundle, checked against MONAI's metadata schema before it is written.

The schema is shipped with the package (``schema/meta_schema_20240725.json``, see ``schema/NOTICE.md``):
MONAI's ``verify_metadata`` downloads it from the URL in the file's ``schema`` field, and our machines are
offline. ``python -m monai.bundle verify_metadata --meta_file configs/metadata.json --filepath
<that file>`` finds it already there and checks against it without a download.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import metadata as dist_metadata
from pathlib import Path
from typing import Any

from clara_hydra.errors import ExportError

SCHEMA_FILE = Path(__file__).parent / "schema" / "meta_schema_20240725.json"
# Where MONAI's model zoo bundles point; verify_metadata downloads it from there when it is not on disk.
SCHEMA_URL = "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20240725.json"
BUNDLE_VERSION = "0.1.0"


def load_schema() -> dict[str, Any]:
    """MONAI's bundle metadata JSON schema (the shipped copy)."""
    schema: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
    return schema


def validate_metadata(meta: Mapping[str, Any]) -> None:
    """Check ``meta`` against MONAI's schema.

    Raises:
        ExportError: every violation, each with its JSON path (jsonschema's ``json_path``).
    """
    import jsonschema

    schema = load_schema()
    validator_cls = jsonschema.validators.validator_for(schema)
    errors = sorted(validator_cls(schema).iter_errors(meta), key=lambda e: e.json_path)
    if errors:
        lines = "; ".join(f"{e.json_path}: {e.message}" for e in errors)
        raise ExportError(f"the bundle's metadata.json breaks MONAI's metadata schema ({SCHEMA_FILE.name}): {lines}")


def versions(names: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of the distributions ``names`` (those not installed are left out)."""
    out: dict[str, str] = {}
    for name in names:
        try:
            out[name] = dist_metadata.version(name)
        except dist_metadata.PackageNotFoundError:
            continue
    return out


def tensor_format(
    kind: str, fmt: str, channels: int, spatial: list[Any], value_range: list[float], channel_def: dict[str, str]
) -> dict[str, Any]:
    """One entry of ``network_data_format`` (an input or output tensor)."""
    return {
        "type": kind,
        "format": fmt,
        "num_channels": channels,
        "spatial_shape": spatial,
        "dtype": "float32",
        "value_range": value_range,
        "is_patch_data": True,
        "channel_def": channel_def,
    }


def build_metadata(
    *,
    study: str,
    trial: int,
    metric: str,
    value: float | None,
    overrides: tuple[str, ...],
    in_channels: int,
    out_channels: int,
    spatial: list[Any],
    input_range: list[float],
    data_source: str,
    needs_clara_hydra: bool,
    label_dtype: str = "uint8",
    class_names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The metadata of a bundle exported from one trial (fields MONAI's schema requires, and a few more).

    ``network_data_format.outputs.pred`` is the network's output (``verify_net_in_out`` checks its channels
    against the network's); the label map that ``inference.json`` and ``evaluate.json`` save is the schema's
    ``post_processed_outputs.pred``: one channel of class indices (``label_dtype``) in the source image's grid.
    ``class_names`` (``{"0": "background", "1": "spleen"}``, from the datalist) name the classes.
    """
    import monai
    import numpy
    import torch

    packages = ("nibabel", "pytorch-ignite", *(("clara-hydra",) if needs_clara_hydra else ()))
    searched = " ".join(overrides) or "(none: the config's defaults)"
    image_channels = {str(i): "image" for i in range(in_channels)}
    classes = dict(class_names or {}) or {
        "0": "background",
        **{str(i): f"class {i}" for i in range(1, max(out_channels, 2))},
    }
    return {
        "schema": SCHEMA_URL,
        "version": BUNDLE_VERSION,
        "changelog": {BUNDLE_VERSION: f"exported by clara-hydra from trial {trial} of Optuna study {study!r}"},
        "monai_version": monai.__version__,
        "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": numpy.__version__,
        "required_packages_version": versions(packages),
        "task": f"Segmentation trained by a clara-hydra sweep (study {study!r}, trial {trial})",
        "description": (
            f"The network and training setup of trial {trial} of the Optuna study {study!r}, exported by "
            f"`clara-hydra export`. Searched values of that trial: {searched}."
        ),
        "authors": "the author of the sweep (exported by clara-hydra)",
        "copyright": "the author of the sweep and the owners of its training data",
        "data_source": data_source,
        "data_type": "nibabel",
        "image_classes": f"{in_channels} input channel(s)",
        "label_classes": "one channel of class indices: " + ", ".join(f"{k} {v}" for k, v in classes.items()),
        "pred_classes": (
            f"{out_channels} channel(s) of scores, channel 0 the background; saved as a label map "
            f"(one channel of class indices 0..{max(out_channels - 1, 1)}, {label_dtype}, the source image's grid)"
        ),
        "eval_metrics": {metric: value} if value is not None else {},
        "intended_use": "Research; validate on your own data before any other use",
        "network_data_format": {
            "inputs": {"image": tensor_format("image", "magnitude", in_channels, spatial, input_range, image_channels)},
            "outputs": {
                "pred": tensor_format(
                    "image",
                    "segmentation",
                    out_channels,
                    spatial,
                    [0.0, 1.0],
                    {k: v for k, v in classes.items() if int(k) < out_channels},
                )
            },
            "post_processed_outputs": {
                "pred": {
                    **tensor_format(
                        "image",
                        "labels",
                        1,
                        ["*"] * len(spatial),  # the source image's grid: any size
                        [0.0, float(max(out_channels - 1, 1))],
                        {"0": "class index: " + ", ".join(f"{k} {v}" for k, v in classes.items())},
                    ),
                    "dtype": label_dtype,
                    "is_patch_data": False,
                }
            },
        },
    }
