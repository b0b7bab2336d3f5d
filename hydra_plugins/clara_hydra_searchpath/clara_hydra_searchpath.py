"""Appends clara-hydra's own config groups to Hydra's search path, so ``+tracking=mlflow`` composes with any
converted tree (``-cd my_conf/``) as well as the repo's ``conf/``. Appended, not prepended: a tree's own
``tracking/mlflow.yaml`` wins. Hydra imports this module at start-up: it imports nothing else of clara-hydra."""

from __future__ import annotations

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

CONF_PACKAGE = "pkg://clara_hydra.tracking.conf"


class ClaraHydraSearchPathPlugin(SearchPathPlugin):
    """Adds ``pkg://clara_hydra.tracking.conf`` (the ``tracking`` group) to every config search path."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="clara_hydra", path=CONF_PACKAGE)
