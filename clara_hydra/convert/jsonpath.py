"""JSON paths as users read them: ``train.pre_transforms[5].search[0].targets``."""

from __future__ import annotations

import re


def join(base: str, key: str | int) -> str:
    """Append a key or list index to a JSON path."""
    if isinstance(key, int):
        return f"{base}[{key}]"
    return f"{base}.{key}" if base else key


_CAMEL_1 = re.compile(r"([A-Z]+)([A-Z][a-z])")
_CAMEL_2 = re.compile(r"([a-z0-9])([A-Z])")


def snake(name: str) -> str:
    """``RandCropByPosNegLabeld`` -> ``rand_crop_by_pos_neg_labeld``; ``UNet`` -> ``unet``."""
    if name.isupper() or (len(name) <= 4 and name[:1].isupper() and name[1:].lower() != name[1:]):
        return name.lower()
    text = _CAMEL_1.sub(r"\1_\2", name)
    text = _CAMEL_2.sub(r"\1_\2", text)
    return re.sub(r"[^0-9a-zA-Z_]+", "_", text).strip("_").lower()
