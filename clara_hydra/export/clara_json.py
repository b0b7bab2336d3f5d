"""``clara-hydra export SWEEP --to clara OUT.json``: one trial as a Clara 4.1 training config, no search blocks.

What Clara's ``remove_search_augs`` wrote for each AutoML job: the training config with that job's values
in place of the searched ones. It is the converter's lowering read backwards (README, "The converted tree"):

=============================================  =====================================================
our tree                                       Clara 4.1
=============================================  =====================================================
``{_target_: monai.networks.nets.UNet, ...}``  ``{"name": "UNet", "args": {...}}`` (``path`` when the short
                                               name would resolve to another class)
``{_ref_: train.optimizer}``                   ``"@optimizer"`` (``@evaluator`` from the other section)
``{_config_: true}``                           ``"@conf"``
``${learning_rate}``, ``${DATA_ROOT}/x``       ``"{learning_rate}"``, ``"{DATA_ROOT}/x"``
other ``${...}`` (resolvers)                   the value, resolved as the trial saw it
``_compose_``/``_list_`` mappings              lists, in order (``null`` members dropped)
``_one_of_`` mapping                           a list of alternatives with their ``disabled``
``_disabled_``, ``_rank_``                     ``"disabled"``, ``"rank"``
``{val_mean_dice: {...}}`` metrics             ``{"name": ..., "log_label": "val_mean_dice", ...}``
``data: {_target_: ...load_datalist, ...}``    the dataset's ``data_list_file_path``/``data_file_base_dir``/
                                               ``data_list_key``
``parameters_of(module={_ref_: train.model})``  ``"#@model.parameters()"``
``from_engine``, ``batch_meta(key=image)``     ``"#monai.handlers.from_engine([...])"``, ``(['image_meta_dict'])``
``discard_output``                             ``"lambda x: None"``
=============================================  =====================================================

Top-level values (first-level parameters, searched names, variables) stay first-level values, so every
``{VAR}`` keeps its link; ``MMAR_CKPT_DIR``/``MMAR_EVAL_OUTPUT_PATH`` left at their default (the trial's job
folder) are left out, and ``clara-hydra convert`` points them into each job's folder again.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clara_hydra import tree_nodes as tree
from clara_hydra.convert.jsonpath import snake
from clara_hydra.errors import ExportError, shorten, with_fix
from clara_hydra.export.select import SelectedTrial
from clara_hydra.export.trial_config import MISSING, SIMPLE_INTERPOLATION, TrialConfig, load_trial_config
from clara_hydra.keywords import Clara, Emitted, SlotKind
from clara_hydra.tree_nodes import Kind

# The converter points these into the job folder when they have no value (clara_hydra.convert.emit).
JOB_DIR_DEFAULTS = {"MMAR_CKPT_DIR": "models", "MMAR_EVAL_OUTPUT_PATH": "eval"}
_ANY_INTERPOLATION = re.compile(r"\$\{[^}]*\}")
# Strings Clara would read as a reference, an expression or a lambda.
_CLARA_SIGILS = ("@", "#")


@dataclass
class ClaraExport:
    """What :func:`export_clara` wrote.

    Args:
        path: the JSON file.
        notes: values that could not keep their link (written resolved).
    """

    path: Path
    notes: list[str] = field(default_factory=list)


def export_clara(trial: SelectedTrial, out: str | os.PathLike[str], *, force: bool = False) -> ClaraExport:
    """Write ``trial`` as a Clara 4.1 training config (``config_train.json`` without search blocks).

    Raises:
        ExportError: ``out`` exists (without ``force``), or a node has no Clara form.
    """
    path = Path(out)
    if path.exists() and not force:
        raise ExportError(with_fix(f"{path} exists", "choose another file name, or pass --force"))
    tc = load_trial_config(trial)
    writer = ClaraWriter(tc)
    document = writer.document()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    return ClaraExport(path=path, notes=writer.notes)


class ClaraWriter:
    """Turns one trial's composed config into a Clara 4.1 document (see the module's table).

    Args:
        tc: the trial's config (raw and resolved).
    """

    def __init__(self, tc: TrialConfig) -> None:
        self.tc = tc
        self.notes: list[str] = []
        self.slots = [k for k in tc.variables() if k in Clara.SLOT_KINDS and isinstance(tc.raw[k], dict)]
        self.names = frozenset(k for k in tc.variables() if k not in self.slots)
        self._names_cache: dict[tuple[str, str | None], str | None] = {}

    def document(self) -> dict[str, Any]:
        """The whole Clara document: first-level values, then ``train`` and ``validate`` (or top-level slots)."""
        doc: dict[str, Any] = {}
        for name in self.tc.variables():
            if name in self.slots:
                continue
            if self.tc.job_dir_vars.get(name) == JOB_DIR_DEFAULTS.get(name, object()):
                continue  # the converter points it into each job's folder again
            if self.tc.raw[name] == MISSING:
                continue  # no value: the converter marks it required (???) again where it is used
            doc[name] = self._first_level(name)
        for section in Clara.SECTIONS:
            res = self.tc.resolved.get(section)
            if isinstance(res, dict):
                doc[section] = {
                    slot: self._slot(self.tc.raw[section][slot], value, f"{section}.{slot}", section, slot)
                    for slot, value in res.items()
                }
        for slot in self.slots:
            doc[slot] = self._slot(self.tc.raw[slot], self.tc.resolved[slot], slot, None, slot)
        return doc

    # -- first level ------------------------------------------------------------------------------------

    def _first_level(self, name: str) -> Any:
        raw, res = self.tc.raw[name], self.tc.resolved[name]
        if name in self.tc.job_dir_vars:
            self.notes.append(f"{name}: written as the trial's own folder {res} (not the converter's default)")
        if tree.is_interpolation(raw):
            return res  # first-level values are not formatted by Clara: the value itself
        return self._literal(raw, name)

    # -- slots ------------------------------------------------------------------------------------------

    def _slot(self, raw: Any, res: Any, path: str, section: str | None, slot: str) -> Any:
        kind = Clara.SLOT_KINDS.get(slot, SlotKind.SINGLE)
        if res is None:
            return None
        if kind is SlotKind.METRICS:
            return self._metrics(raw, res, path, section, slot)
        if not isinstance(res, dict):
            raise ExportError(f"{path}: expected a component, got {shorten(res)}")
        if kind in (SlotKind.TRANSFORMS, SlotKind.LIST) or tree.kind_of(res) in tree.COLLECTIONS:
            return [self._component(raw[k], v, f"{path}.{k}", section, slot, member=k) for k, v in _members(res)]
        return self._component(raw, res, path, section, slot)

    def _metrics(self, raw: Any, res: Any, path: str, section: str | None, slot: str) -> Any:
        if not isinstance(res, dict):
            raise ExportError(f"{path}: expected metrics keyed by their log label, got {shorten(res)}")
        items = [
            self._component(raw[label], node, f"{path}.{label}", section, slot, log_label=str(label))
            for label, node in res.items()
            if node is not None
        ]
        if slot == "key_metric" and len(items) == 1:
            return items[0]
        return items

    def _component(
        self,
        raw: Any,
        res: Any,
        path: str,
        section: str | None,
        slot: str | None,
        log_label: str | None = None,
        member: str | None = None,
    ) -> dict[str, Any]:
        if not isinstance(res, dict) or tree.kind_of(res) is not Kind.TARGET:
            raise ExportError(f"{path}: expected a component ({{_target_: ...}}), got {shorten(res)}")
        if res[Emitted.TARGET] == MISSING:
            raise ExportError(f"{path}: a component the converter could not carry over (_target_: ???)")
        raw = raw if isinstance(raw, dict) else res
        if res.get(Emitted.PARTIAL) is True:
            raise ExportError(f"{path}: a partial (_partial_: true) component has no Clara form")
        if Emitted.ARGS in res:
            raise ExportError(f"{path}: positional arguments (_args_) have no Clara form")
        out: dict[str, Any] = self._class(str(res[Emitted.TARGET]), slot, member)
        if log_label is not None:
            out[Clara.LOG_LABEL] = log_label
        if Emitted.DISABLED in raw:
            out[Clara.DISABLED] = self._value(raw[Emitted.DISABLED], res[Emitted.DISABLED], path, section)
        if Emitted.RANK in raw:
            out[Clara.RANK] = self._value(raw[Emitted.RANK], res[Emitted.RANK], path, section)
        args: dict[str, Any] = {}
        for key in tree.arguments(res):
            value, sub = res[key], f"{path}.{key}"
            if key == "data" and isinstance(value, dict) and value.get(Emitted.TARGET) == _DATALIST:
                for attr in (Clara.DATA_LIST_FILE_PATH, Clara.DATA_FILE_BASE_DIR, Clara.DATA_LIST_KEY):
                    if attr in value:
                        out[attr] = self._value(raw[key].get(attr), value[attr], f"{sub}.{attr}", section)
                continue
            args[str(key)] = self._value(raw.get(key), value, sub, section)
        loader = _MODEL_LOADERS.get(str(res[Emitted.TARGET]))
        if slot == "model" and loader is not None and set(args) == {loader[0]}:
            # A 4.1 validation model entry: {"ts_path": ...} / {"ckpt_path": ...}, no class of its own.
            attributes = {k: v for k, v in out.items() if k in (Clara.DISABLED, Clara.RANK)}
            return {loader[1]: args[loader[0]], **attributes}
        if args:
            out[Clara.ARGS] = args
        return out

    def _class(self, target: str, slot: str | None, member: str | None = None) -> dict[str, Any]:
        """``{"name": short}`` when the converter resolves that short name to ``target``, else ``{"path": target}``.

        A member whose key is not its class's snake_case name (the converter rewrote ``ToTensord`` into
        ``EnsureTyped``, key ``to_tensord``) keeps that name as its identifier: ``{"name": "ToTensord", "path": ...}``.
        """
        short = target.rsplit(".", 1)[-1]
        base = re.sub(r"_\d+$", "", member) if member else None
        if base and base != snake(short):
            return {Clara.NAME: "".join(part[:1].upper() + part[1:] for part in base.split("_")), Clara.PATH: target}
        if (short, slot) not in self._names_cache:
            self._names_cache[short, slot] = _short_name_target(short, slot)
        found = self._names_cache[short, slot]
        return {Clara.NAME: short} if found == target else {Clara.PATH: target}

    # -- values -----------------------------------------------------------------------------------------

    def _value(self, raw: Any, res: Any, path: str, section: str | None) -> Any:
        if tree.kind_of(raw) is Kind.INTERPOLATION:
            text = self._format(raw)
            if text is not None:
                return text
            return self._plain(res, path, section)
        kind = tree.kind_of(res)
        if kind is Kind.SEQUENCE:
            raw_list = raw if isinstance(raw, list) else res
            pairs = enumerate(zip(raw_list, res, strict=True))
            return [self._value(r, v, f"{path}[{i}]", section) for i, (r, v) in pairs]
        if not isinstance(res, dict):
            return self._literal(res, path)
        raw = raw if isinstance(raw, dict) else res
        if kind is Kind.REFERENCE:
            return self._reference(str(res[Emitted.REF]), path, section)
        if kind is Kind.CONFIG:
            return Clara.CONF_REF
        if kind in tree.COLLECTIONS:
            raise ExportError(f"{path}: a nested _compose_/_list_/_one_of_ has no Clara form")
        if kind is Kind.TARGET:
            expression = self._expression(raw, res, path, section)
            if expression is not None:
                return expression
            return self._component(raw, res, path, section, None)
        return {str(k): self._value(raw.get(k), res[k], f"{path}.{k}", section) for k in tree.arguments(res)}

    def _plain(self, res: Any, path: str, section: str | None) -> Any:
        """A resolved value (no interpolation left) in Clara form."""
        return self._value(res, res, path, section)

    def _format(self, raw: str) -> str | None:
        """``${VAR}`` / ``${A}/x`` as Clara's ``{VAR}`` / ``{A}/x`` when every interpolation is a top-level name."""
        for found in _ANY_INTERPOLATION.findall(raw):
            match = SIMPLE_INTERPOLATION.fullmatch(found)
            if match is None or match.group(1) not in self.names:
                return None  # a resolver or a nested key: the caller writes the resolved value
        return SIMPLE_INTERPOLATION.sub(lambda m: "{" + m.group(1) + "}", raw)

    def _reference(self, target: str, path: str, section: str | None) -> str:
        where, _, slot = target.rpartition(".")
        if not where:  # a top-level slot (validation configs)
            return Clara.REF_PREFIX + target
        if "." in where or where not in Clara.SECTIONS:
            raise ExportError(f"{path}: a reference to {target!r} (not a slot) has no Clara form")
        here = self.tc.resolved.get(section) if section else None
        if where != section and isinstance(here, dict) and slot in here:
            raise ExportError(
                f"{path}: refers to {target}, but Clara's @{slot} would find {section}.{slot} first (SPEC §3)"
            )
        return Clara.REF_PREFIX + slot

    def _expression(self, raw: dict[str, Any], res: dict[str, Any], path: str, section: str | None) -> str | None:
        target = res[Emitted.TARGET]
        if target == "clara_hydra.expressions.parameters_of":
            module = res.get("module")
            if not (isinstance(module, dict) and tree.kind_of(module) is Kind.REFERENCE):
                raise ExportError(f"{path}: parameters_of needs a reference to a slot (module: {{_ref_: ...}})")
            ref = self._reference(str(module[Emitted.REF]), path, section)
            return f"#{ref}.parameters()"
        if target == "clara_hydra.expressions.discard_output":
            return "lambda x: None"
        if target == "clara_hydra.expressions.batch_meta":
            return f"#monai.handlers.from_engine([{res.get('key', 'image') + '_meta_dict'!r}])"
        if target == "monai.handlers.from_engine" and set(res) <= {Emitted.TARGET, "keys", "first"}:
            keys = res.get("keys") or []
            keys = [keys] if isinstance(keys, str) else list(keys)
            first = ", first=True" if res.get("first") else ""
            return f"#monai.handlers.from_engine({[str(k) for k in keys]!r}{first})"
        return None

    def _literal(self, value: Any, path: str) -> Any:
        if isinstance(value, str) and (value.startswith(_CLARA_SIGILS) or value.lstrip().startswith("lambda")):
            raise ExportError(
                with_fix(
                    f"{path}: the string {shorten(value)} would be read by Clara as a reference or an expression",
                    "use another value",
                )
            )
        return value


_DATALIST = "clara_hydra.data.load_datalist"
# Validation model entries: target -> (its argument, the Clara attribute that names the file).
_MODEL_LOADERS = {
    "torch.jit.load": ("f", Clara.TS_PATH),
    "clara_hydra.expressions.model_from_checkpoint": ("ckpt_path", Clara.CKPT_PATH),
}


def _short_name_target(short: str, slot: str | None) -> str | None:
    """What the converter's catalog resolves a short name to in ``slot`` (None when it cannot say)."""
    from clara_hydra.convert.catalog import resolve_component

    try:
        return resolve_component(short, None, {}, json_path="", slot=slot, era="4.1").target
    except Exception:  # the catalog is the converter's: if it cannot answer, `path` is always exact
        return None


def _members(res: dict[str, Any]) -> list[tuple[str, Any]]:
    """Named members of a ``_compose_``/``_list_``/``_one_of_`` mapping, in order; ``null`` ones dropped (disabled
    ones are kept: Clara writes them with ``"disabled": true``)."""
    if tree.one_of_list(res) is not None:
        raise ExportError("the list form {_one_of_: [...]} has no Clara member names: write it as a mapping")
    return list(tree.members(res))
