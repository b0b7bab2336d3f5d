"""A trial's composed config in MONAI bundle syntax, with no ``$`` expression.

MONAI instantiates a bundle itself (``monai.bundle.ConfigParser``); so that it needs nothing of ours to do so,
every marker of our tree (README, "The converted tree") becomes plain bundle syntax:

=============================================  =====================================================
our tree                                       bundle
=============================================  =====================================================
``{_ref_: train.optimizer}``                   ``"@train::optimizer"`` (MONAI resolves an id once: one object)
``{_ref_: train.model}``                       ``"@network_def"`` (the id MONAI's ``ckpt_export`` expects)
``${learning_rate}`` (a top-level variable)    ``"@learning_rate"`` (overridable: ``--learning_rate 0.01``)
other ``${...}``                               the value, resolved as the trial saw it
``{_compose_: true, a: ..., b: ...}``          ``{"_target_": "monai.transforms.Compose", "transforms": [...]}``
``{_list_: true, ...}``, ``{_one_of_: ...}``   a list; the one enabled alternative
``_disabled_: true`` member, ``_rank_: 1``     dropped (a bundle runs as one process, rank 0)
``_partial_: true``                            ``"_mode_": "callable"``
``parameters_of(module)``                      ``{"_target_": "torch.nn.Module.parameters", "self": ...}``
``load_datalist(...)``                         ``monai.data.load_decathlon_datalist`` (paths made absolute)
``device: cuda``                               ``"@device"``: ``ignite.distributed.device()`` (CUDA if present)
``train_conf: {_config_: true}``               dropped from ``save_dict`` (a plain dict is not a checkpoint entry)
``StatsHandler(output_transform=discard)``     ``"iteration_log": false`` (Clara's ``lambda x: None``: no iteration log)
=============================================  =====================================================
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from clara_hydra import tree_nodes as tree
from clara_hydra.errors import ExportError, shorten, with_fix
from clara_hydra.export.trial_config import MISSING, TrialConfig, simple_link
from clara_hydra.keywords import Emitted
from clara_hydra.tree_nodes import Kind

MODEL_PATH = "train.model"
NETWORK_ID = "network_def"
DEVICE_ID = "device"
SEP = "::"  # MONAI's id separator (ID_SEP_KEY)
COMPOSE_TARGET = "monai.transforms.Compose"
# Strings MONAI's parser would read as a reference, an expression or a macro.
SIGILS = ("@", "$", "%")
_CHECKPOINT_DICTS = ("save_dict", "load_dict")


def bundle_id(path: str) -> str:
    """The bundle id of one of our config paths (``train.optimizer`` -> ``train::optimizer``)."""
    return NETWORK_ID if path == MODEL_PATH else path.replace(".", SEP)


class BundleTranslator:
    """Translates the nodes of one trial's config (see the module's table).

    Args:
        trial: the trial's config (raw and resolved).
        variables: the top-level names kept as bundle ids (links to them become ``@name``).
    """

    def __init__(self, trial: TrialConfig, variables: list[str]) -> None:
        self.trial = trial
        self.variables = frozenset(variables)
        self.uses_clara_hydra = False  # a target of ours is left (the bundle then needs clara-hydra)

    def variable_value(self, name: str) -> Any:
        """A top-level variable's value: resolved; a relative path that exists from the launch folder made absolute."""
        value = self.trial.resolved[name]
        if value == MISSING:
            return value  # the exporter refuses it only where the bundle uses it
        if isinstance(value, str) and value and not os.path.isabs(value) and (self.trial.launch_dir / value).exists():
            return os.fspath(self.trial.launch_dir / value)
        return self._literal(value, name)

    def node(self, path: str) -> Any:
        """The bundle form of the config node at ``path`` (``train.optimizer``)."""
        raw, res = _at(self.trial.raw, path), _at(self.trial.resolved, path)
        return self._node(raw, res, path)

    # -- the walk ---------------------------------------------------------------------------------------

    def _node(self, raw: Any, res: Any, path: str) -> Any:
        link = simple_link(raw, self.variables)
        if link is not None:
            return f"@{link}"
        kind = tree.kind_of(res)
        if kind is Kind.SEQUENCE:
            raw_list = raw if isinstance(raw, list) else res
            return [self._node(r, v, f"{path}[{i}]") for i, (r, v) in enumerate(zip(raw_list, res, strict=True))]
        if not isinstance(res, dict):
            return self._literal(res, path)
        raw = raw if isinstance(raw, dict) else res
        if kind is Kind.REFERENCE:
            return "@" + bundle_id(str(res[Emitted.REF]))
        if kind is Kind.CONFIG:
            raise ExportError(
                with_fix(f"{path}: the whole config ({{_config_: true}}) has no bundle form", "remove it from there")
            )
        if kind is Kind.ONE_OF:
            alternatives = tree.one_of_list(res)
            if alternatives is not None:  # the list form {_one_of_: [node, ...]}
                raw_list = tree.one_of_list(raw) or alternatives
                chosen = [(r, v) for r, v in zip(raw_list, alternatives, strict=True) if v is not None and _enabled(v)]
            else:
                chosen = [(raw[k], v) for k, v in self._members(res)]
            if len(chosen) != 1:
                raise ExportError(f"{path}: {len(chosen)} alternatives enabled, expected exactly one")
            return self._node(chosen[0][0], chosen[0][1], path)
        if kind is Kind.COMPOSE:
            items = [self._node(raw[k], v, f"{path}.{k}") for k, v in self._members(res)]
            return {Emitted.TARGET: COMPOSE_TARGET, "transforms": items}
        if kind is Kind.LIST:
            return [self._node(raw[k], v, f"{path}.{k}") for k, v in self._members(res)]
        if kind is Kind.TARGET:
            return self._component(raw, res, path)
        return {str(k): self._node(raw.get(k), res[k], f"{path}.{k}") for k in tree.arguments(res) if _enabled(res[k])}

    @staticmethod
    def _members(res: dict[str, Any]) -> list[tuple[str, Any]]:
        """Enabled named members of a ``_compose_``/``_list_``/``_one_of_`` mapping, in order."""
        return list(tree.members(res, keep=lambda _key, value: _enabled(value)))

    def _component(self, raw: dict[str, Any], res: dict[str, Any], path: str) -> dict[str, Any]:
        target = str(res[Emitted.TARGET])
        if Emitted.ARGS in res:
            raise ExportError(
                with_fix(f"{path}: positional arguments (_args_) have no bundle form", "name the arguments")
            )
        special = _SPECIAL.get(target)
        if special is not None:
            return special(self, raw, res, path)
        if target in _STATS_HANDLERS and _is_discard(res.get("output_transform")) and "iteration_log" not in res:
            # Clara's `lambda x: None`: the handler logs nothing per iteration. MONAI says so itself
            # (iteration_log=false), so the bundle needs no clara_hydra callable for it.
            res = {**{k: v for k, v in res.items() if k != "output_transform"}, "iteration_log": False}
        if target.startswith("clara_hydra."):
            self.uses_clara_hydra = True
        out: dict[str, Any] = {Emitted.TARGET: target}
        if res.get(Emitted.PARTIAL) is True:
            out["_mode_"] = "callable"
        for key in tree.arguments(res):
            value, sub = res[key], f"{path}.{key}"
            if key in _CHECKPOINT_DICTS and isinstance(value, dict):
                out[key] = {
                    k: self._node(raw[key].get(k) if isinstance(raw.get(key), dict) else v, v, f"{sub}.{k}")
                    for k, v in value.items()
                    if not (isinstance(v, dict) and v.get(Emitted.CONFIG) is True)
                }
            elif key == "device" and isinstance(value, str) and value.startswith("cuda"):
                out[key] = f"@{DEVICE_ID}"
            else:
                out[key] = self._node(raw.get(key), value, sub)
        return out

    def _literal(self, value: Any, path: str) -> Any:
        if value == MISSING:
            raise ExportError(
                with_fix(f"{path}: a required value is missing (???)", "export a trial that ran with it set")
            )
        if isinstance(value, str) and value.startswith(SIGILS):
            raise ExportError(
                with_fix(
                    f"{path}: the string {shorten(value)} starts with {value[0]!r}, which MONAI's bundle parser "
                    "reads as a reference, expression or macro",
                    "use another value",
                )
            )
        return value


_DISCARD = "clara_hydra.expressions.discard_output"
_STATS_HANDLERS = ("monai.handlers.StatsHandler", "monai.handlers.TensorBoardStatsHandler")


def _is_discard(node: Any) -> bool:
    return isinstance(node, dict) and node.get(Emitted.TARGET) == _DISCARD and node.get(Emitted.PARTIAL) is True


def _enabled(node: Any) -> bool:
    return tree.enabled(node, rank=0)  # a bundle runs as one process


def _parameters(t: BundleTranslator, raw: dict[str, Any], res: dict[str, Any], path: str) -> dict[str, Any]:
    module = t._node(raw.get("module"), res.get("module"), f"{path}.module")
    return {Emitted.TARGET: "torch.nn.Module.parameters", "self": module}


def _datalist(t: BundleTranslator, raw: dict[str, Any], res: dict[str, Any], path: str) -> dict[str, Any]:
    def arg(name: str, default: Any = None, is_path: bool = True) -> Any:
        if name not in res:
            return default
        value = t._node(raw.get(name), res[name], f"{path}.{name}")
        if is_path and isinstance(value, str) and not value.startswith("@") and not os.path.isabs(value):
            value = os.fspath(t.trial.launch_dir / value)
        return value

    list_file = arg("data_list_file_path")
    base = arg("data_file_base_dir")
    if base is None:  # our load_datalist's default: the JSON's folder (MSD layout)
        resolved = res["data_list_file_path"]
        base = os.fspath((t.trial.launch_dir / str(resolved)).parent)
    return {
        Emitted.TARGET: "monai.data.load_decathlon_datalist",
        "data_list_file_path": list_file,
        "is_segmentation": True,
        "data_list_key": arg("data_list_key", "training", is_path=False),
        "base_dir": base,
    }


_SPECIAL: dict[str, Callable[[BundleTranslator, dict[str, Any], dict[str, Any], str], dict[str, Any]]] = {
    "clara_hydra.expressions.parameters_of": _parameters,
    "clara_hydra.data.load_datalist": _datalist,
}


def _at(tree: dict[str, Any], path: str) -> Any:
    node: Any = tree
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ExportError(f"the trial's config has no {path!r}")
        node = node[part]
    return node


def references(node: Any) -> set[str]:
    """The bundle ids a translated node refers to (``@train::optimizer`` -> ``train::optimizer``)."""
    found: set[str] = set()
    if isinstance(node, str) and node.startswith("@"):
        found.add(node[1:])
    elif isinstance(node, dict):
        for v in node.values():
            found |= references(v)
    elif isinstance(node, list):
        for v in node:
            found |= references(v)
    return found
