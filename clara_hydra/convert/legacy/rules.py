"""Curated rewrite rules: Clara-era MONAI (0.5-0.8) names whose rewrite needs more than a rename.

The names and arguments MONAI itself renamed are in the generated table (:mod:`.history`); the rules here
add what a table cannot say (an added ``channel_dim``, a value fold). Clara 3.x's own components are in
:mod:`.tf`.

Everything here is data: each :class:`Rule` says which legacy component becomes which current class, how
its arguments are renamed or folded, what is added, what is dropped, and *why*.
:func:`~clara_hydra.convert.legacy.apply.apply_rule` runs a rule over a component's args and reports every change,
so the catalog can list each rewrite in the conversion report. The tables are verified against the shipped
signature index by the tests (every target exists; every renamed or added argument is a parameter of the target).

A value a fold cannot compute with -- a placeholder (``"{VAR}"``, ``"@model"``, ``"#expr"``), a nested
component, a typed value the parser decoded, or :class:`Searched` (the argument is searched or ``apply``-ed, so
its value is chosen per trial) -- is *opaque*. A fold may move an opaque value whole into one new argument
(``to_onehot: true, n_classes: "{N}"`` -> ``to_onehot: "{N}"``, so the new argument reads the same variable
or searched key); one that would have to compute with it, or place it inside a list it builds (a ``{VAR}``
may hold a list itself), is a located error (``unfoldable-legacy-value``): nothing is ever dropped or guessed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from clara_hydra.errors import shorten

# Slots that hold metrics (4.1 key_metric/additional_metrics, 4.0 metrics).
METRIC_SLOTS = frozenset({"key_metric", "additional_metrics", "metrics"})


class Unfoldable(ValueError):
    """A fold needs a concrete value but got a placeholder, an expression or a component."""


@dataclass(frozen=True)
class Searched:
    """Stands for the value of an argument that is searched or ``apply``-ed: it is chosen per trial."""

    arg: str

    def __repr__(self) -> str:
        return f"<searched or applied {self.arg}>"


def is_concrete(value: Any) -> bool:
    """Whether a value is plain JSON data a fold may compute with.

    Not concrete: the values the parser decoded from ``{VAR}``, ``@ref`` and ``#expr`` strings
    (:mod:`~clara_hydra.convert.sigils`), components (dicts), :class:`Searched` and any other typed value, so a new
    kind of placeholder is never mistaken for a literal. A plain string is literal text (the parser decoded it).
    """
    if isinstance(value, list | tuple):
        return all(is_concrete(v) for v in value)
    return value is None or isinstance(value, str | bool | int | float)


def concrete(value: Any, arg: str) -> Any:
    """``value`` itself when a fold may compute with it.

    Raises:
        Unfoldable: it is a placeholder, an expression or a component.
    """
    if not is_concrete(value):
        raise Unfoldable(f"'{arg}' is {quote_value(value)}, not a literal value")
    return value


def _each(value: Any, func: Callable[[Any], Any]) -> Any:
    """Apply ``func`` to a value or to each item of a per-key list (MONAI's dictionary transforms take both)."""
    return [func(v) for v in value] if isinstance(value, list) else func(value)


# ---------------------------------------------------------------------------------------------- folds


@dataclass(frozen=True)
class Fold:
    """A value rewrite: consumes the original args ``reads`` (those present) and returns the new args."""

    reads: tuple[str, ...]
    func: Callable[[Mapping[str, Any]], dict[str, Any]]
    why: str


def _onehot(v: Mapping[str, Any]) -> dict[str, Any]:
    # MONAI 0.8 made `to_onehot` the number of classes; `to_onehot: true` + `n_classes: N` is `to_onehot: N`.
    # MONAI 0.5-0.7's AsDiscreted repeated a scalar `to_onehot`/`n_classes` per key (ensure_tuple_rep).
    n = v.get("n_classes", v.get("num_classes"))
    if "to_onehot" not in v:
        return {}  # n_classes alone did nothing (one-hot was off): consumed, nothing to carry over
    if n is None and not is_concrete(v["to_onehot"]):
        return {"to_onehot": v["to_onehot"]}  # a placeholder alone is today's spelling already: leave it
    onehot = concrete(v["to_onehot"], "to_onehot")

    def one(flag: Any, classes: Any) -> Any:
        if flag is True:
            if classes is None:
                raise Unfoldable("'to_onehot: true' needs the number of classes (n_classes)")
            return classes  # may be opaque ({VAR}, a searched value): moved, never computed with
        return None if flag is False else flag

    if isinstance(onehot, list) and onehot and all(f is True for f in onehot) and not is_concrete(n):
        # One-hot on every key with an opaque count: MONAI repeats a scalar (or takes a per-key list) the same way
        # for `n_classes` then and `to_onehot` now, so the value moves whole.
        return {"to_onehot": n}
    if isinstance(onehot, list) or isinstance(n, list):
        flags = onehot if isinstance(onehot, list) else [onehot] * len(n)
        counts = n if isinstance(n, list) else [n] * len(flags)
        if len(flags) != len(counts):
            raise Unfoldable(f"'to_onehot' has {len(flags)} entries and 'n_classes' {len(counts)}")
        return {"to_onehot": [one(f, c) for f, c in zip(flags, counts, strict=True)]}
    return {"to_onehot": one(onehot, n)}


def _threshold(v: Mapping[str, Any]) -> dict[str, Any]:
    # MONAI 0.8 merged `threshold_values: true` + `logit_thresh: t` into `threshold: t`.
    flags = concrete(v.get("threshold_values", False), "threshold_values")
    thresh = v.get("logit_thresh", 0.5)  # may be opaque: moved, never computed with
    if isinstance(flags, list) and flags and all(f is True for f in flags) and not is_concrete(thresh):
        return {"threshold": thresh}  # thresholding every key with an opaque value: it moves whole
    if isinstance(flags, list) or isinstance(thresh, list):
        fs = flags if isinstance(flags, list) else [flags] * len(thresh)
        threshs = thresh if isinstance(thresh, list) else [thresh] * len(fs)
        if len(fs) != len(threshs):
            raise Unfoldable(f"'threshold_values' has {len(fs)} entries and 'logit_thresh' {len(threshs)}")
        return {"threshold": [t if f else None for f, t in zip(fs, threshs, strict=True)]}
    return {"threshold": thresh if flags else None}


# ---------------------------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class Rule:
    """How one legacy component becomes a current one.

    Args:
        old: the legacy short name.
        new: the fully qualified current target, or None when there is no MONAI counterpart.
        why: one line, shown in the report.
        renames: original arg -> new arg, value untouched.
        folds: value rewrites (applied first; they consume their ``reads``).
        add: args added when absent (they make the new class behave as the old one did).
        drop: args with no counterpart -> why; dropped with a warning.
        slots: the rule applies only in these slots (None: everywhere).
        drop_unknown: drop (with a warning) any other arg the target does not accept, instead of an error.
            Used for 3.x components, whose args were never MONAI's.
        caveat: a warning shown whenever the rule applies (a behaviour that differs).
    """

    old: str
    new: str | None
    why: str
    renames: Mapping[str, str] = field(default_factory=dict)
    folds: tuple[Fold, ...] = ()
    add: Mapping[str, Any] = field(default_factory=dict)
    drop: Mapping[str, str] = field(default_factory=dict)
    slots: frozenset[str] | None = None
    drop_unknown: bool = False
    caveat: str = ""


_T = "monai.transforms."
_ONEHOT = Fold(("to_onehot", "n_classes", "num_classes"), _onehot, "MONAI 0.8: 'to_onehot' is the number of classes")
_THRESH = Fold(("threshold_values", "logit_thresh"), _threshold, "MONAI 0.8: 'threshold' replaces both args")

# Clara 4.0/4.1 shipped MONAI 0.5-0.8. Applied in every era, when the old name is not a current name
# (or, for folds on current classes, when one of the fold's args is present).
MONAI_RULES: tuple[Rule, ...] = (
    Rule("AddChanneld", _T + "EnsureChannelFirstd", "removed in MONAI 1.3", add={"channel_dim": "no_channel"}),
    Rule("AddChannel", _T + "EnsureChannelFirst", "removed in MONAI 1.3", add={"channel_dim": "no_channel"}),
    Rule("AsChannelFirstd", _T + "EnsureChannelFirstd", "removed in MONAI 1.3", add={"channel_dim": -1}),
    Rule("AsChannelFirst", _T + "EnsureChannelFirst", "removed in MONAI 1.3", add={"channel_dim": -1}),
    Rule("SplitChanneld", _T + "SplitDimd", "removed in MONAI 1.3", renames={"channel_dim": "dim"}),
    Rule("SplitChannel", _T + "SplitDim", "removed in MONAI 1.3", renames={"channel_dim": "dim"}),
    Rule("LoadNiftid", _T + "LoadImaged", "removed in MONAI 0.5: LoadImaged reads NIfTI; reader kwargs pass through"),
    Rule("LoadNifti", _T + "LoadImage", "removed in MONAI 0.5: LoadImage reads NIfTI; reader kwargs pass through"),
    Rule("LoadPNGd", _T + "LoadImaged", "removed in MONAI 0.5: LoadImaged reads PNG"),
    Rule("LoadPNG", _T + "LoadImage", "removed in MONAI 0.5: LoadImage reads PNG"),
    Rule("NiftiDataset", "monai.data.ImageDataset", "removed in MONAI 0.5: ImageDataset reads any format"),
    Rule("NovoGrad", "monai.optimizers.Novograd", "MONAI spells it Novograd"),
    Rule("AsDiscreted", _T + "AsDiscreted", "args changed in MONAI 0.8", folds=(_ONEHOT, _THRESH)),
    Rule("AsDiscrete", _T + "AsDiscrete", "args changed in MONAI 0.8", folds=(_ONEHOT, _THRESH)),
    # Removed in MONAI 0.9; its replacement SaveImage[d] is a transform, so the handler lives on in our package.
    Rule(
        "SegmentationSaver",
        "clara_hydra.components.SegmentationSaver",
        "removed in MONAI 0.9; the same handler on today's SaveImage",
        slots=frozenset({"handlers"}),
    ),
    Rule(
        "TransformInverter",
        "clara_hydra.components.TransformInverter",
        "removed in MONAI 0.7; the same handler on today's Invertd",
        slots=frozenset({"handlers"}),
    ),
    # Clara's Accuracy read MONAI's post-processed output; ignite's Accuracy cannot read the decollated list
    # MONAI engines produce, MONAI's ConfusionMatrix handler computes the same number.
    Rule(
        "Accuracy",
        "monai.handlers.ConfusionMatrix",
        "Clara's Accuracy metric is MONAI's ConfusionMatrix(metric_name='accuracy')",
        add={"metric_name": "accuracy"},
        drop={"is_multilabel": "ConfusionMatrix handles multi-label one-hot input itself", "device": "not needed"},
        slots=METRIC_SLOTS,
    ),
)

# Clara 4.x's own classes (NVIDIA's ``medl``, not MONAI) with an evident MONAI counterpart, by short name and by
# the dotted path Clara configs give. Clara 4.1's DeepGrow MMARs drive training clicks with
# `deepgrow.interaction.ClickInteraction`; MONAI's deepgrow app has the same process function, Interaction(transforms,
# max_interactions, train, key_probability) -- the args are checked against it, so any other arg is a located error.
CLARA_RULES: tuple[Rule, ...] = (
    Rule(
        "ClickInteraction",
        "monai.apps.deepgrow.interaction.Interaction",
        "Clara 4.1's DeepGrow click simulation is MONAI's deepgrow Interaction (same arguments)",
    ),
)
CLARA_PATHS: Mapping[str, Rule] = {"deepgrow.interaction.ClickInteraction": CLARA_RULES[0]}


def clara_path_rule(path: str) -> Rule | None:
    """The rule of a Clara-only class given by ``path`` (any package prefix: ``medl.apps.deepgrow...``), else None."""
    for suffix, rule in CLARA_PATHS.items():
        if path == suffix or path.endswith("." + suffix):
            return rule
    return None


# Argument renames on any current class whose signature has the new name but not the old one.
ARG_RENAMES: Mapping[str, tuple[str, str]] = {
    "dimensions": ("spatial_dims", "networks renamed 'dimensions' to 'spatial_dims' in MONAI 0.6-1.3"),
    "post_transform": ("postprocessing", "engines renamed 'post_transform' to 'postprocessing' in MONAI 0.6"),
    "do_sigmoid": ("sigmoid", "losses renamed 'do_sigmoid' to 'sigmoid' in MONAI 0.3"),
    "do_softmax": ("softmax", "losses renamed 'do_softmax' to 'softmax' in MONAI 0.3"),
}

MONAI_BY_NAME: Mapping[str, Rule] = {r.old: r for r in MONAI_RULES + CLARA_RULES}


def short(target: str) -> str:
    """``monai.transforms.LoadImaged`` -> ``LoadImaged``."""
    return target.rsplit(".", 1)[-1]


def quote_value(value: Any) -> str:
    """A value as messages show it: ``repr``, cut (a 20 MB string stays a short message)."""
    return repr(value) if isinstance(value, Searched) else shorten(repr(value), 80)
