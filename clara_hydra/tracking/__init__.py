"""Experiment tracking in MLflow: ``python train.py [-m] ... +tracking=mlflow``.

A sweep records one parent run for the study and one nested child run per trial; a single run records one
run. The sweeper owns the runs' lifecycle (:mod:`.sweep`: the parent at study start, each child before its
job is launched, its final state from the study after the trial is told); the job adds what only it sees
(:mod:`.job`: the composed config, the validation values by epoch, the job folder).

Nothing here imports MLflow unless the composed config has a ``tracking`` node: a run without it pays
nothing. Modules: :mod:`.settings` (the ``tracking`` node, the store's URI; no MLflow), :mod:`.store` (the
MLflow client, experiments, tag names), :mod:`.sweep`, :mod:`.job`.
"""
