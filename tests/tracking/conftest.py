"""Helpers of the tracking tests: read an MLflow store back with MLflow's own client."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mlflow", reason="the tracking tests need mlflow-skinny (pip install -e '.[test]')")

from tests.runtime.conftest import demo_root  # noqa: F401  (the tiny demo data set)
from tests.sweeper.conftest import run_toy  # noqa: F401  (the toy sweep fixture)


@dataclass
class Store:
    """The runs of one MLflow store, read with ``MlflowClient``."""

    uri: str

    @property
    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.uri)

    def runs(self, experiment: str, deleted: bool = False) -> list[Any]:
        from mlflow.entities import ViewType

        found = self.client.get_experiment_by_name(experiment)
        assert found is not None, f"no experiment {experiment!r} in {self.uri}"
        view = ViewType.ALL if deleted else ViewType.ACTIVE_ONLY
        return list(self.client.search_runs([found.experiment_id], run_view_type=view, max_results=1000))

    def parents(self, experiment: str) -> list[Any]:
        return [r for r in self.runs(experiment) if r.data.tags.get("clara_hydra.kind") == "study"]

    def children(self, experiment: str, parent: str) -> dict[int, Any]:
        """Trial number -> child run of ``parent``."""
        return {
            int(r.data.tags["clara_hydra.trial"]): r
            for r in self.runs(experiment)
            if r.data.tags.get("mlflow.parentRunId") == parent
        }

    def history(self, run_id: str, metric: str) -> dict[int, float]:
        return {m.step: m.value for m in self.client.get_metric_history(run_id, metric)}


def store_at(folder: Path) -> Store:
    """The default store of a sweep or run whose root folder is ``folder``."""
    db = folder / "mlflow.db"
    assert db.is_file(), f"no MLflow store at {db}"
    return Store(f"sqlite:///{db}")
