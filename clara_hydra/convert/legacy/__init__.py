"""Clara's legacy knowledge: what old names and arguments mean in today's MONAI and torch.

Four modules:

* :mod:`.history` -- MONAI's own renames and removals, generated from its git history
  (``tools/make_legacy_tables.py``): removed names and their replacements, ``deprecated_arg`` renames,
  removed arguments, changed defaults;
* :mod:`.rules` -- curated rules for Clara-era MONAI names whose rewrite needs more than a rename (an added
  argument, a value fold), and Clara 4.x's own classes with a MONAI counterpart (DeepGrow's ClickInteraction);
* :mod:`.apply` -- applying a rule to one component's args and reporting every change (or refusing loudly);
* :mod:`.tf` -- Clara 3.x's own (TensorFlow) components, from NVIDIA's documentation.
"""

from clara_hydra.convert.legacy.apply import Rewrite, apply_rule
from clara_hydra.convert.legacy.history import (
    CLARA_MONAI,
    ArgRename,
    DefaultChange,
    History,
    RemovedArg,
    RemovedName,
    load_history,
    version_key,
)
from clara_hydra.convert.legacy.rules import (
    ARG_RENAMES,
    CLARA_PATHS,
    CLARA_RULES,
    METRIC_SLOTS,
    MONAI_BY_NAME,
    MONAI_RULES,
    Fold,
    Rule,
    Searched,
    Unfoldable,
    clara_path_rule,
    concrete,
    is_concrete,
    short,
)
from clara_hydra.convert.legacy.tf import TF_BY_NAME, TF_NO_COUNTERPART, TF_RULES

__all__ = [
    "ARG_RENAMES",
    "CLARA_MONAI",
    "CLARA_PATHS",
    "CLARA_RULES",
    "METRIC_SLOTS",
    "MONAI_BY_NAME",
    "MONAI_RULES",
    "TF_BY_NAME",
    "TF_NO_COUNTERPART",
    "TF_RULES",
    "ArgRename",
    "DefaultChange",
    "Fold",
    "History",
    "RemovedArg",
    "RemovedName",
    "Rewrite",
    "Rule",
    "Searched",
    "Unfoldable",
    "apply_rule",
    "clara_path_rule",
    "concrete",
    "is_concrete",
    "load_history",
    "short",
    "version_key",
]
