"""No input crashes the converter: random edits of real Clara configs give a conversion or a user error, never a bug.

Each example is edited at a random place (a value replaced by another JSON value of any type, or a key deleted); the
converter must either convert it (into YAML that reads back) or raise a :class:`clara_hydra.errors.UserError` (exit
code 2 for the CLI).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig, OmegaConf

from clara_hydra.convert import Document, convert_documents
from clara_hydra.errors import UserError

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "clara_examples"
SOURCES = {p.name: json.loads(p.read_text()) for p in sorted(EXAMPLES.glob("*.json"))}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 300)
    | st.floats(-1e3, 1e3, allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(
        ["@model", "@nope", "#@model.parameters()", "{DATA_ROOT}", "{X}", "lambda x: x", "a#b", "@disabled"]
    ),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["name", "args", "search", "apply", "disabled", "targets", "type", "domain", "ref", "x"]),
            inner,
            max_size=3,
        )
    ),
    max_leaves=8,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


PATHS = {name: _paths(doc) for name, doc in SOURCES.items()}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(SOURCES)), st.data(), json_values, st.booleans())
def test_random_edits_never_crash(name: str, data: st.DataObject, value: Any, delete: bool) -> None:
    doc = copy.deepcopy(SOURCES[name])
    path = data.draw(st.sampled_from(PATHS[name]))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    try:
        conv = convert_documents(Document(name, json.dumps(doc).encode()))
    except UserError:
        return
    for rel, text in conv.files.items():
        if rel.endswith(".yaml"):
            assert isinstance(OmegaConf.create(text), DictConfig), rel  # the emitted YAML always reads back
