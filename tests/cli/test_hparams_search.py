"""Hyperparameter search (configs/hparams_search, the Optuna sweeper): every search config
composes into a real Optuna sweep over keys the config has; a 2-trial study runs through the
console script, the sweeper optimises what hybridrec-train returns (each trial's best validation
score), the trials are tagged as one study, and ``hybridrec-runs compare --study`` shows them
best first."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep
from hydra.utils import instantiate
from hydra_plugins.hydra_optuna_sweeper._impl import create_optuna_distribution_from_override
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from conftest import CONFIG_DIR, TINY_DATA, Compose, group_options, run_train_cli
from hybridrec.cli.checks import check_config
from hybridrec.cli.runs import main as runs_main
from hybridrec.tracking.sweep import DIRECTION_TAG, STUDY_TAG, SWEEP_TAG, parse_overrides


@pytest.mark.parametrize("option", group_options("hparams_search"))
def test_search_config_is_a_seeded_optuna_sweep_over_real_keys(option: str) -> None:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", [f"hparams_search={option}"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"  # no --multirun needed
    assert sweeper.direction == "maximize" and cfg.monitor == "val/ndcg@10"
    assert sweeper.study_name == option and sweeper.n_trials > 0
    sampler = instantiate(sweeper.sampler)
    assert isinstance(sampler, optuna.samplers.TPESampler)
    assert sweeper.sampler.seed == cfg.seed  # the same seed proposes the same trials
    parser = OverridesParser.create()
    for key, space in sweeper.params.items():
        # a key the composed config has (a typo would add a key nothing reads)...
        assert OmegaConf.select(cfg, key, default="missing") != "missing", key
        # ...and a search space Optuna understands
        (override,) = parser.parse_overrides([f"{key}={space}"])
        assert create_optuna_distribution_from_override(override) is not None, key


def _documented_base(option: str) -> list[str]:
    """The overrides a search config's header says to use it with (``experiment=...``)."""
    text = (CONFIG_DIR / "hparams_search" / f"{option}.yaml").read_text()
    usage = re.search(rf"hybridrec-train (.*?)hparams_search={option}", text)
    assert usage, f"hparams_search/{option}.yaml: no usage line in its header"
    return usage.group(1).split()


def _tried_values(space: str) -> list[Any]:
    """Every value a search space can give, or its bounds for an interval."""
    (override,) = OverridesParser.create().parse_overrides([f"key={space}"])
    value = override.value()
    if isinstance(value, ChoiceSweep):
        return list(value.list)
    assert isinstance(value, IntervalSweep), space
    return [value.start, value.end]


@pytest.mark.parametrize("option", group_options("hparams_search"))
def test_every_value_a_search_can_try_passes_the_config_checks(
    compose_cfg: Compose, option: str
) -> None:
    """Each trial is a training run: every value of every searched key, on the experiment the
    config's header names, composes and passes the checks a run makes before any data."""
    base = [*_documented_base(option), f"hparams_search={option}"]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        full = compose("train", base, return_hydra_config=True)
    composed = compose_cfg(*base)
    check_config(composed)
    for key, space in full.hydra.sweeper.params.items():
        for value in _tried_values(str(space)):
            # the trial's override `key=value` on the composed config (the key exists: the
            # test above holds it)
            cfg = composed.copy()
            OmegaConf.update(cfg, key, value, merge=False)
            check_config(cfg)  # raises ConfigError naming the key


#: hybridrec-train's console script in a Python where Hydra's Optuna sweeper cannot be imported
#: (None in sys.modules: Hydra's plugin scan skips it, as if it were not installed)
_WITHOUT_SWEEPER = """
import sys
for name in ("", ".config", ".optuna_sweeper", "._impl"):
    sys.modules["hydra_plugins.hydra_optuna_sweeper" + name] = None
sys.argv = ["hybridrec-train", *sys.argv[1:]]
from hybridrec.cli.train_app import main
main()
"""


@pytest.mark.parametrize(
    "args",
    [
        ["hparams_search=mf_optuna"],
        ["-m", "hparams_search=sasrec_optuna"],
        ["hydra/sweeper=optuna"],
    ],
)
def test_search_without_the_sweeper_installed_is_one_sentence(
    tmp_path: Path, args: list[str]
) -> None:
    script = tmp_path / "without_sweeper.py"
    script.write_text(_WITHOUT_SWEEPER)
    done = subprocess.run(
        [sys.executable, str(script), *args], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 2, done.stderr[-2000:]
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"hybridrec-train: error: {args[-1]} needs Hydra's Optuna sweeper")
    assert "pip install -c requirements.lock -e '.[search]'" in line
    assert not (tmp_path / "multirun").exists() and not (tmp_path / "outputs").exists()


@pytest.mark.slow  # two trainings in one process
def test_a_two_trial_study_is_one_group_of_runs_best_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["hparams_search=mf_optuna", *TINY_DATA, "trainer.max_epochs=1"]
    done = run_train_cli(tmp_path, *args, "hydra.sweeper.n_trials=2", uri=uri)
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(uri)
    trials = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        f"tags.`{STUDY_TAG}` = 'mf_optuna'",
    )
    assert len(trials) == 2
    assert {t.data.tags[DIRECTION_TAG] for t in trials} == {"maximize"}
    assert len({t.data.tags[SWEEP_TAG] for t in trials}) == 1  # one sweep folder
    assert {t.data.params["model/_target_"] for t in trials} == {"hybridrec.nn.MF"}
    # the sweeper maximised what the entry point returned: each trial's best validation score
    (folder,) = (tmp_path / "multirun").iterdir()
    result = yaml.safe_load((folder / "optimization_results.yaml").read_text())
    scores = {t.info.run_id: t.data.metrics["best/val/ndcg10"] for t in trials}
    assert result["best_value"] == pytest.approx(max(scores.values()), abs=1e-6)
    best = max(scores, key=lambda r: scores[r])
    chosen = next(t for t in trials if t.info.run_id == best).data.params
    assert str(result["best_params"]["optimizer.lr"]) == chosen["optimizer/lr"]
    # hybridrec-runs shows the study, the best trial first
    runs_main(["compare", "--study", "mf_optuna", "--tracking-uri", uri, "--format", "csv"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and best in lines[1] and "optimizer/lr" in lines[0]


#: a study whose trials fail in both ways a run can: a config error (max_epochs 0, refused
#: before any run starts) and a diverging loss (a scheduler that multiplies the learning rate
#: by 1e30 after epoch 0); the random sampler seeded by seed=42 draws all three outcomes
_FAILING_STUDY = """# @package _global_
defaults:
  - override /model: mf
  - override /hydra/sweeper: optuna
  - override /hydra/sweeper/sampler: random
monitor: val/ndcg@10
hydra:
  mode: MULTIRUN
  sweeper:
    direction: maximize
    study_name: failing_trials
    n_trials: 4
    n_jobs: 1
    sampler:
      seed: ${seed}
    params:
      trainer.max_epochs: choice(0, 2)
      +scheduler.gamma: choice(1.0, 1e30)
"""


@pytest.mark.slow  # two short trainings and two refused trials, one process
def test_failing_trials_are_recorded_failed_and_the_study_goes_on(tmp_path: Path) -> None:
    configs = tmp_path / "configs" / "hparams_search"
    configs.mkdir(parents=True)
    (configs / "failing_trials.yaml").write_text(_FAILING_STUDY)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = run_train_cli(
        tmp_path,
        f"hydra.searchpath=[file://{tmp_path / 'configs'}]",
        "hparams_search=failing_trials",
        *TINY_DATA,
        "seed=42",
        "+scheduler._target_=torch.optim.lr_scheduler.StepLR",
        "+scheduler._partial_=true",
        "+scheduler.step_size=1",
        uri=uri,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    output = done.stdout + done.stderr
    # Optuna: every trial ran, three told FAIL (the sweeper logs each), the best is the one
    # that finished (optuna 2.10's RDB storage does not open under SQLAlchemy 2: the study
    # stays in memory, so its record is the sweeper's log and optimization_results.yaml)
    assert output.count("Failed experiment:") == 3, output[-3000:]
    assert output.count("the study goes on") == 3
    (folder,) = (tmp_path / "multirun").iterdir()
    result = yaml.safe_load((folder / "optimization_results.yaml").read_text())
    assert result["best_params"] == {"trainer.max_epochs": 2, "+scheduler.gamma": 1.0}
    # MLflow: one run per trial, the failed ones FAILED with the reason
    client = MlflowClient(uri)
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        f"tags.`{STUDY_TAG}` = 'failing_trials'",
    )
    by_job = {int(r.data.tags["sweep_job"]): r for r in runs}
    assert sorted(by_job) == [0, 1, 2, 3]
    outcomes = []
    for run in by_job.values():
        params = parse_overrides(run.data.tags["overrides"])
        epochs, gamma = params["trainer.max_epochs"], float(params["+scheduler.gamma"])
        if run.info.status == "FINISHED":
            assert (epochs, gamma) == ("2", 1.0)
            assert run.data.metrics["best/val/ndcg10"] == pytest.approx(result["best_value"])
            outcomes.append("finished")
            continue
        assert run.info.status == "FAILED"
        reason = run.data.tags["hybridrec.failure"]
        if epochs == "0":  # refused before training: a run made for the trial
            assert "trainer.max_epochs: got 0" in reason, reason
            assert run.info.run_name.startswith("failing_trials-job")
            assert run.data.params["trainer/max_epochs"] == "0"  # what `compare` shows
            outcomes.append("config error")
        else:  # the scheduler blew the loss up: train() ended its run FAILED
            assert gamma == 1e30 and "training diverged" in reason, reason
            outcomes.append("diverged")
    assert set(outcomes) == {"finished", "config error", "diverged"}
