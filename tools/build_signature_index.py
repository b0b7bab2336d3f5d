#!/usr/bin/env python
"""Regenerate the shipped signature index for the installed MONAI, torch and ignite.

Usage::

    python tools/build_signature_index.py            # writes clara_hydra/convert/signature_index/<versions>.json
    python tools/build_signature_index.py OUT.json   # writes elsewhere

Run it after upgrading any of the three libraries and commit the new file: conversion reads the index
instead of importing the libraries (which alone would cost more than the conversion's time budget).
The output is deterministic (sorted keys), so an unchanged install regenerates a byte-identical file.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Runnable from a checkout without installing.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clara_hydra.convert.signatures import main

if __name__ == "__main__":
    raise SystemExit(main())
