"""Clara 4.0's implicit wiring made explicit (SPEC §3, last point).

4.0 configs have no ``@`` references: Clara passed the model to the optimizer, the optimizer to the scheduler, the
pre-transforms to the dataset, and so on. This pass (between ``check`` and ``lower``) supplies those arguments as
``_ref_`` nodes for every component, so the emitted tree says everything, like a 4.1 config would; the lowering
only places them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from clara_hydra.convert.catalog import Resolution
from clara_hydra.convert.diagnostics import Problems
from clara_hydra.convert.jsonpath import join
from clara_hydra.convert.model import ClaraConfig, Component, Era
from clara_hydra.convert.nodes import Interpolation, Reference, Target, WholeConfig
from clara_hydra.convert.references import slot_key, slot_reference
from clara_hydra.convert.stages import Checked, Wired

#: arguments whose 4.0 value (a list of slot names) is replaced by a mapping of references
REPLACED = frozenset({"save_dict", "load_dict"})

#: names a 4.0 ``save_dict``/``load_dict`` list may give besides slots: Clara 4.0 stored the training config
#: itself under ``train_conf`` (a 4.1 config writes ``"train_conf": "@conf"``)
CONFIG_NAMES = frozenset({"train_conf"})

#: ``"disabled": "true"``: strings Clara 4.0 configs wrote for booleans, and the value each means
DISABLED_STRINGS = {"true": True, "false": False}

_TRAINER = {
    "train_data_loader": "dataloader",
    "network": "model",
    "optimizer": "optimizer",
    "loss_function": "loss",
    "inferer": "inferer",
    "postprocessing": "post_transforms",
    "key_train_metric": "key_metric",
    "additional_metrics": "additional_metrics",
    "train_handlers": "handlers",
}
_EVALUATOR = {
    "val_data_loader": "dataloader",
    "network": "model",
    "inferer": "inferer",
    "postprocessing": "post_transforms",
    "key_val_metric": "key_metric",
    "additional_metrics": "additional_metrics",
    "val_handlers": "handlers",
}


def wire(checked: Checked) -> Wired:
    """The arguments Clara 4.0 supplied implicitly, for every component of a 4.0 config (see :func:`implicit_args`)."""
    resolved = checked.bound.resolved
    config = resolved.parsed.config
    implicit: dict[str, Mapping[str, Any]] = {}
    problems = Problems(config.file)
    if config.era is Era.V40:
        for comp in config.all_components():
            args = implicit_args(config, comp, _target(resolved.resolutions.get(comp.json_path)), problems)
            if args:
                implicit[comp.json_path] = args
    return Wired(checked, implicit, (*checked.diagnostics, *problems.found))


def _target(res: Resolution | None) -> str | None:
    return res.target if res is not None else None


def _slot_ref(config: ClaraConfig, section: str | None, name: str) -> Reference | None:
    """A reference to ``name`` if some section has it (4.0's ``metrics`` list provides both metric slots)."""
    order = [section, *[s for s in config.sections if s != section]]
    for sec in order:
        has = config.slot(sec, name) is not None
        if name in ("key_metric", "additional_metrics"):
            has = has or config.slot(sec, "metrics") is not None
            if sec != section:
                has = False  # metrics are never borrowed from the other section
        if has:
            return Reference(f"{sec}.{name}" if sec else name)
    return None


def implicit_args(config: ClaraConfig, comp: Component, target: str | None, problems: Problems) -> dict[str, Any]:
    """Arguments 4.0 supplied implicitly for ``comp`` (only those the config did not give; see :data:`REPLACED`).

    A ``save_dict`` name that is no slot is a ``dangling-ref`` error in ``problems``.
    """
    if config.era is not Era.V40 or target is None:
        return {}
    section, slot = comp.section, comp.slot
    out: dict[str, Any] = {}

    def ref(name: str) -> Reference | None:
        return _slot_ref(config, section, name)

    if slot == "optimizer" and "params" not in comp.args:
        model = ref("model")
        if model:
            out["params"] = Target("clara_hydra.expressions.parameters_of", (("module", model),))
    elif slot == "lr_scheduler" and "optimizer" not in comp.args:
        out["optimizer"] = ref("optimizer")
    elif slot == "dataset" and "transform" not in comp.args:
        out["transform"] = ref("pre_transforms")
    elif slot == "dataloader" and "dataset" not in comp.args:
        out["dataset"] = ref("dataset")
    elif slot in ("trainer", "evaluator"):
        table = _TRAINER if slot == "trainer" else _EVALUATOR
        use_gpu = config.first_level.get("use_gpu", True)
        out["device"] = "cuda" if use_gpu is not False else "cpu"
        for arg, name in table.items():
            out[arg] = ref(name)
        if "amp" in config.first_level:
            out["amp"] = Interpolation("amp")
    elif target.endswith(".ValidationHandler") and "validator" not in comp.args:
        out["validator"] = _slot_ref(config, "validate", "evaluator")
    elif target.endswith(".LrScheduleHandler") and "lr_scheduler" not in comp.args:
        out["lr_scheduler"] = ref("lr_scheduler")
    elif target.endswith(".TransformInverter") and "transform" not in comp.args:
        out["transform"] = ref("pre_transforms")  # it inverts the pre-transforms of its own section
    for arg in REPLACED:
        names = comp.args.get(arg)
        if isinstance(names, list) and all(isinstance(n, str) for n in names):
            where = join(join(comp.json_path, "args"), arg)
            out[arg] = {n: _stored(config, n, section, where, problems) for n in names}
    return {k: v for k, v in out.items() if v is not None}


def _stored(
    config: ClaraConfig, name: str, section: str | None, path: str, problems: Problems
) -> Reference | WholeConfig:
    """What a 4.0 ``save_dict`` list item names: the training config, or a slot of either section."""
    if name in CONFIG_NAMES and slot_key(config, name, section) is None:
        return WholeConfig()
    return slot_reference(config, name, section, path, problems)


def disabled_string(raw: object) -> bool | None:
    """The boolean a ``"disabled": "true"``/``"False"`` string stands for; None for anything else."""
    if not isinstance(raw, str):
        return None
    return DISABLED_STRINGS.get(raw.strip().lower())
