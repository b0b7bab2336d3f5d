"""Train a converted Clara config with MONAI: `python train.py [-cd my_conf/] [key=value ...]`; `-m` sweeps."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

import clara_hydra.runtime  # noqa: F401  (registers ${clara.job_dir:...} before Hydra composes)
from clara_hydra.errors import EXIT_USER_ERROR, exit_code_for, hydra_user_error
from clara_hydra.runtime.argv import config_dir_as_primary
from clara_hydra.runtime.console import quiet_sweep_job
from clara_hydra.runtime.task import main as task


@hydra.main(config_path="conf", config_name="config", version_base=None)
def main(cfg: DictConfig) -> float:
    """Return the best validation key metric: the objective of a sweep."""
    with quiet_sweep_job():  # in a sweep: the job's log goes to its train.log only
        return task(cfg)


if __name__ == "__main__":
    sys.argv = config_dir_as_primary(sys.argv)
    try:
        main()
    except KeyboardInterrupt as exc:  # Ctrl-C while Hydra composes (the task and the sweeper handle their own)
        code = exit_code_for(exc)
        if code is None:
            raise
        sys.exit(code)
    except SystemExit as exc:
        if hydra_user_error(exc):  # Hydra has printed its compact message (bad override, unknown key)
            sys.exit(EXIT_USER_ERROR)
        raise
