"""Hydra plugin package: clara-hydra's config groups (``tracking/``) on every tree's search path."""
