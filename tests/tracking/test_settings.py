"""The ``tracking`` node and where the store is: no MLflow needed."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from clara_hydra.errors import UserError
from clara_hydra.tracking.settings import ENV_URI, TrackingError, TrackingSettings, absolute_uri, stable_root


def settings(**node: object) -> TrackingSettings:
    found = TrackingSettings.from_config(OmegaConf.create({"tracking": {"backend": "mlflow", **node}}))
    assert found is not None
    return found


def test_no_tracking_node_means_off() -> None:
    assert TrackingSettings.from_config(OmegaConf.create({"epochs": 1})) is None
    assert TrackingSettings.from_config(OmegaConf.create({"tracking": None})) is None


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"url": "x"}, "tracking.url: unknown key\n    fix: did you mean 'uri'?"),
        ({"backend": "wandb"}, "tracking.backend: 'wandb' is not supported"),
        ({"uri": 3}, "tracking.uri: expected a non-empty string or null, got 3"),
        ({"tags": [1]}, "tracking.tags: expected a mapping"),
    ],
)
def test_bad_nodes_are_compact_user_errors(node: dict[str, object], message: str) -> None:
    with pytest.raises(TrackingError) as info:
        TrackingSettings.from_config(OmegaConf.create({"tracking": node}))
    assert isinstance(info.value, UserError) and message in str(info.value)


def test_uri_precedence_key_then_environment_then_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_URI, raising=False)
    assert settings().store_uri(tmp_path / "multirun", tmp_path) == f"sqlite:///{tmp_path}/multirun/mlflow.db"
    monkeypatch.setenv(ENV_URI, "http://tracking:5000")
    assert settings().store_uri(tmp_path, tmp_path) == "http://tracking:5000"
    assert settings(uri="runs.db").store_uri(tmp_path, tmp_path) == f"sqlite:///{tmp_path}/runs.db"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sqlite:///rel/x.db", "sqlite:////w/rel/x.db"),
        ("sqlite:////abs/x.db", "sqlite:////abs/x.db"),
        ("x.sqlite", "sqlite:////w/x.sqlite"),
        ("mlruns", "file:///w/mlruns"),
        ("file:mlruns", "file:///w/mlruns"),
        ("file:///abs/mlruns", "file:///abs/mlruns"),
        ("postgresql://u:pw@h/db", "postgresql://u:pw@h/db"),
        ("databricks", "databricks"),
    ],
)
def test_relative_uris_become_absolute(text: str, expected: str) -> None:
    assert absolute_uri(text, Path("/w")) == expected


@pytest.mark.parametrize(
    ("raw", "resolved", "root"),
    [
        ("outputs/${now:%Y-%m-%d}/${now:%H-%M-%S}", "outputs/2026-12-04/18-00-00", "/w/outputs"),
        ("runs/${name}/${now:%H-%M-%S}", "runs/exp1/18-00-00", "/w/runs/exp1"),
        ("/abs/run", "/abs/run", "/abs/run"),
        ("${now:%H-%M-%S}", "18-00-00", "/w"),
    ],
)
def test_the_stable_root_cuts_the_timestamp(raw: str, resolved: str, root: str) -> None:
    assert stable_root(raw, resolved, Path("/w")) == Path(root)
