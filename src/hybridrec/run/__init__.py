"""The jobs behind the console scripts: what ``hybridrec-train``, ``-eval``, ``-bench`` and
``-data`` run, as plain functions.

train      the training job (:func:`~hybridrec.run.train.train`) and its fit-and-test
composed   the composed hybrid's job; compose: its parts, combiner and side-by-side table
resume     resume= / ckpt_path=: what a run continues from, same-config check
replay     resume=RUN_ID alone: the run's recorded overrides, given again
refit      refit_on_val: retrain on train + validation for the chosen epochs
task       the RecLitModule around a model, as the config describes it
tags       the MLflow run's name and tags, the job's output folder
logs       data / judgments lines, rater reliability, the judgment head's choice
plots      a hybrid's gate by item popularity (artifacts)
summary    the printed summary of a finished run
result     TrainResult
evaluate   hybridrec-eval's job: a checkpoint tested under overrides (the --lambdas front too);
           eval_config: the checkpoint and its config under the overrides, EvalError;
           eval_log: the metrics into a new eval run or the evaluated one
bench      hybridrec-bench: a short training run's figures against the device's peak
data       hybridrec-data: validate's judgments line, describe's train line, forget

Nothing is imported here: ``cli/`` modules import what they run, when they run it.
"""
