"""Run a sweep as an Optuna study: each trial is a normal vlmkit training run plus an eval run, under
SWEEP_DIR/trials/NNN.

Several workers (the same command started N times, on one machine or several, against one `--storage`)
share the study: grid points are enqueued once by the worker that creates the study and each is popped by
exactly one worker; TPE/random workers stop at the trial budget. A running trial records an Optuna heartbeat;
when its worker dies (kill -9, a lost node), the next worker or rerun fails it after `worker.grace_s` and
Optuna's RetryFailedTrialCallback enqueues it again, so nothing is silently lost.
"""

from __future__ import annotations

import gc
import json
import logging
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError, VlmkitError
from ..io import write_json
from .spec import RANGE_KINDS, Objective, Sweep

log = logging.getLogger("vlmkit.sweep")
SWEEP_FILE = "sweep.json"
TRIALS_DIR = "trials"
READY_ATTR = "vlmkit_ready"
FINGERPRINT_ATTR = "vlmkit_fingerprint"
INSTALL_HINT = "vlmkit sweep needs Optuna: pip install 'vlmkit[sweep]' (or pip install optuna)"


def require_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise VlmkitError(INSTALL_HINT) from None
    # Heartbeats and stale-trial retries are marked experimental; the heartbeat is recorded by our own
    # ask/tell loop (_Heartbeat), which Optuna warns about because it only knows Study.optimize.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
    return optuna


def encode(value: Any) -> Any:
    """Optuna stores None/bool/int/float/str choices; a list (e.g. lora.targets) is stored as its JSON."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else json.dumps(value)


def decode(key: str, value: Any, space: dict[str, Any]) -> Any:
    choices = space.get(key)
    if isinstance(choices, list) and isinstance(value, str):
        for choice in choices:
            if encode(choice) == value:
                return choice
    return value


def suggest(trial: Any, sweep: Sweep) -> dict[str, Any]:
    """This trial's parameters (enqueued grid points come back as they were enqueued)."""
    params = {}
    for key, spec in sweep.spec.space.items():
        if isinstance(spec, list):
            value = trial.suggest_categorical(key, [encode(c) for c in spec])
        else:
            kind = next(k for k in spec if k in RANGE_KINDS)
            low, high = spec[kind]
            if kind == "int_uniform":
                value = trial.suggest_int(key, int(low), int(high), step=int(spec.get("step", 1)))
            else:
                value = trial.suggest_float(key, float(low), float(high), log=kind == "log_uniform")
        params[key] = decode(key, value, sweep.spec.space)
    return params


def make_storage(url: str, sweep: Sweep) -> Any:
    optuna = require_optuna()
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    if not url.startswith(("sqlite:", "postgresql", "mysql")):
        raise ConfigError(f"--storage {url}: give an Optuna RDB storage URL (sqlite:///, postgresql://, mysql://)")
    return optuna.storages.RDBStorage(
        url,
        heartbeat_interval=sweep.spec.worker.heartbeat_s,
        grace_period=sweep.spec.worker.grace_s,
        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=sweep.spec.worker.max_retries),
        engine_kwargs={"connect_args": {"timeout": 60}} if url.startswith("sqlite:") else None,
    )


def _sampler(sweep: Sweep) -> Any:
    optuna = require_optuna()
    if sweep.spec.sampler == "grid":
        space = {k: [encode(c) for c in v] for k, v in sweep.spec.space.items()}
        return optuna.samplers.GridSampler(space, seed=sweep.spec.seed)
    if sweep.spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=sweep.spec.seed)
    multi = len(sweep.objectives) > 1
    return optuna.samplers.TPESampler(seed=sweep.spec.seed, n_startup_trials=min(3, sweep.budget), multivariate=multi)


def _pruner(sweep: Sweep) -> Any:
    optuna = require_optuna()
    spec = sweep.spec.pruning
    if spec is None or spec.pruner == "none":
        return optuna.pruners.NopPruner()
    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=spec.startup_trials, n_warmup_steps=spec.warmup_steps)
    if spec.pruner == "percentile":
        return optuna.pruners.PercentilePruner(
            spec.percentile, n_startup_trials=spec.startup_trials, n_warmup_steps=spec.warmup_steps
        )
    if spec.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.HyperbandPruner()


def open_study(sweep: Sweep, storage: Any, *, wait_s: float = 120.0) -> Any:
    """Create the study (and enqueue the grid) in exactly one worker; the others load it once it is ready."""
    optuna = require_optuna()
    common = {"study_name": sweep.name, "storage": storage, "sampler": _sampler(sweep), "pruner": _pruner(sweep)}
    try:
        study = optuna.create_study(directions=sweep.directions, **common)
    except optuna.exceptions.DuplicatedStudyError:  # created by another worker or an earlier run
        return _join_study(optuna.load_study(**common), sweep, wait_s)
    study.set_user_attr(FINGERPRINT_ATTR, sweep.fingerprint())
    study.set_user_attr("objectives", [o.model_dump() for o in sweep.objectives])
    if sweep.spec.sampler == "grid":
        for params in sweep.grid[: sweep.budget]:
            study.enqueue_trial({k: encode(v) for k, v in params.items()})
    study.set_user_attr(READY_ATTR, True)
    return study


def _join_study(study: Any, sweep: Sweep, wait_s: float) -> Any:
    deadline = time.monotonic() + wait_s
    while not study.user_attrs.get(READY_ATTR):
        if time.monotonic() > deadline:
            raise VlmkitError(f"study '{sweep.name}' exists but its creator never finished setting it up")
        time.sleep(0.5)
    if study.user_attrs.get(FINGERPRINT_ATTR) != sweep.fingerprint():
        raise VlmkitError(
            f"study '{sweep.name}' in this storage was started with another sweep (base config, space, "
            "objectives or sampler differ); use a new --out/--storage or a new `name:`"
        )
    if [d.name.lower() for d in study.directions] != sweep.directions:
        raise VlmkitError(f"study '{sweep.name}' optimises other directions than this sweep file")
    return study


class _Heartbeat:
    """Records the trial's heartbeat in the storage and samples the process's peak resident memory."""

    def __init__(self, storage: Any, trial_id: int, interval: float):
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self.peak_kb = _rss_kb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        next_beat = 0.0
        while not self._stop.wait(0.2):
            self.peak_kb = max(self.peak_kb, _rss_kb())
            if time.monotonic() >= next_beat:
                self.storage.record_heartbeat(self.trial_id)
                next_beat = time.monotonic() + self.interval

    def __enter__(self) -> _Heartbeat:
        self.storage.record_heartbeat(self.trial_id)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _rss_kb() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def pruning_callback(trial: Any, maximize: bool) -> Any:
    """A TrainerCallback that feeds the trainer's periodic eval loss to Optuna's pruner and stops a trial that
    is clearly behind. The intermediate value is the eval loss, negated when the study maximises, so the
    pruner compares in the study's own direction. `pruned_at` is the step it stopped at, or None."""
    from transformers import TrainerCallback

    class Pruning(TrainerCallback):
        pruned_at: int | None = None

        def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any) -> None:
            loss = (metrics or {}).get("eval_loss")
            if loss is None:
                return
            trial.report(-loss if maximize else loss, state.global_step)
            if trial.should_prune():
                self.pruned_at = state.global_step
                control.should_training_stop = True

    return Pruning()


def run_trial(trial: Any, sweep: Sweep, out: Path, *, storage: Any) -> list[float]:
    """Train and evaluate one trial; returns the objective values (raises optuna.TrialPruned when pruned)."""
    optuna = require_optuna()
    from ..train.runner import train

    params = suggest(trial, sweep)
    trial_dir = out / TRIALS_DIR / f"{trial.number:03d}"
    trial.set_user_attr("run_dir", str(trial_dir))
    retry_of = _frozen(trial).system_attrs.get("failed_trial")
    if retry_of is not None:
        trial.set_user_attr("retry_of", retry_of)
    config = sweep.trial_config(params, trial_dir)
    log.info("trial %d: %s", trial.number, _params_text(params))
    pruner = None
    callbacks = []
    if sweep.spec.pruning and sweep.spec.pruning.pruner != "none":
        pruner = pruning_callback(trial, maximize=sweep.directions[0] == "maximize")
        callbacks.append(pruner)
    with _Heartbeat(storage, trial._trial_id, sweep.spec.worker.heartbeat_s) as beat:
        started = time.perf_counter()
        result = train(config, callbacks=callbacks, progress=False)
        train_s = time.perf_counter() - started
        trainable = sum(group.get("trainable", 0) for group in result.parameters.values())
        trial.set_user_attr("trainable_params", trainable)
        trial.set_user_attr("train_s", round(train_s, 3))
        trial.set_user_attr("global_step", result.global_step)
        if pruner is not None and pruner.pruned_at is not None:
            trial.set_user_attr("pruned_at_step", pruner.pruned_at)
            raise optuna.TrialPruned(f"pruned at step {pruner.pruned_at}")
        started = time.perf_counter()
        scores = _evaluate(sweep, config, result, trial_dir)
        eval_s = time.perf_counter() - started
    run_values = {
        "trainable_params": float(trainable),
        "s_per_step": train_s / max(result.global_step, 1),
        "peak_memory_mb": beat.peak_kb / 1024,
        "eval_loss": result.eval_loss,
    }
    trial.set_user_attr("eval_s", round(eval_s, 3))
    trial.set_user_attr("peak_memory_mb", round(beat.peak_kb / 1024, 1))
    trial.set_user_attr("scores", scores)
    values = []
    for objective in sweep.objectives:
        value = run_values.get(objective.metric) if objective.metric in run_values else scores.get(_key(objective))
        if value is None:
            raise VlmkitError(f"trial {trial.number}: no value for objective '{objective.metric}'")
        values.append(float(value))
    return values


def _frozen(trial: Any) -> Any:
    """The stored view of a live trial (its system attributes: enqueued parameters, retry of which trial)."""
    return trial.study.get_trials(deepcopy=False)[trial.number]


def _key(objective: Objective) -> str:
    return f"{Path(str(objective.task)).stem}:{objective.metric}"


def _evaluate(sweep: Sweep, config: Any, result: Any, trial_dir: Path) -> dict[str, float]:
    """Evaluate the trial's adapter (or full model) on each objective's task and data, one model load."""
    from ..data.schema import read_samples
    from ..eval import evaluate
    from ..eval.engine import load_predict_fn
    from ..infer.settings import media_from_config

    wanted = [o for o in sweep.objectives if o.task is not None]
    if not wanted:
        return {}
    model = str(result.model_dir) if result.model_dir else config.model.path
    adapter = result.adapter_dir
    media = media_from_config(trial_dir / "config.yaml")
    predict, facts = load_predict_fn(
        model, adapter=adapter, batch_size=max(o.batch_size for o in wanted), dtype=config.model.dtype, media=media
    )
    scores: dict[str, float] = {}
    done: set[tuple[str, str]] = set()
    try:
        for objective in wanted:
            if (objective.task, objective.data) in done:
                continue
            done.add((objective.task, objective.data))
            name = Path(str(objective.task)).stem
            run_dir = trial_dir / "eval" if len(wanted) == 1 else trial_dir / "eval" / name
            outcome = evaluate(
                predict,
                objective.task,
                read_samples(objective.data),
                run_dir,
                batch_size=objective.batch_size,
                slice=objective.slice,
                manifest={**facts, "data": objective.data},
                make_plots=False,
            )
            for key, value in (outcome.summary or {}).get("overall", {}).items():
                if isinstance(value, (int, float)):
                    scores[f"{name}:{key}"] = float(value)
    finally:
        del predict
        gc.collect()
    return scores


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _counted(trials: list[Any]) -> int:
    """Trials that use the budget: every trial except queued ones and failed ones that were retried."""
    from optuna.trial import TrialState

    retried = {t.system_attrs.get("failed_trial") for t in trials} - {None}
    return sum(1 for t in trials if t.state != TrialState.WAITING and t.number not in retried)


def run_worker(
    sweep: Sweep,
    out: Path,
    *,
    storage_url: str | None = None,
    on_trial: Callable[[Any, int], None] | None = None,
    max_trials: int | None = None,
) -> Any:
    """Take trials from the study until the grid is done or the budget is used; returns the study."""
    optuna = require_optuna()
    from optuna.trial import TrialState

    out.mkdir(parents=True, exist_ok=True)
    (out / TRIALS_DIR).mkdir(exist_ok=True)
    url = storage_url or f"sqlite:///{(out / 'study.db').resolve()}"
    storage, study = _connect(url, sweep)
    write_json(
        out / SWEEP_FILE,
        {
            "name": sweep.name,
            "file": str(sweep.path),
            "storage": _public_url(url),
            "budget": sweep.budget,
            "sampler": sweep.spec.sampler,
            "objectives": [o.model_dump() for o in sweep.objectives],
        },
    )
    ran = 0
    while max_trials is None or ran < max_trials:
        optuna.storages.fail_stale_trials(study)  # a dead worker's trial: failed, then queued again
        trials = study.get_trials(deepcopy=False)
        waiting = [t for t in trials if t.state == TrialState.WAITING]
        if not waiting and (sweep.spec.sampler == "grid" or _counted(trials) >= sweep.budget):
            if any(t.state == TrialState.RUNNING for t in trials):
                time.sleep(min(sweep.spec.worker.heartbeat_s, 5))  # another worker's, or a dead one's
                continue
            break
        trial = study.ask()
        if sweep.spec.sampler == "grid" and "fixed_params" not in _frozen(trial).system_attrs:
            # Another worker popped the last grid point between our look and our ask: not a new point.
            trial.set_user_attr("skipped", "no grid point left")
            study.tell(trial, state=TrialState.FAIL)
            continue
        try:
            values = run_trial(trial, sweep, out, storage=storage)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
        except KeyboardInterrupt:
            study.tell(trial, state=TrialState.FAIL)
            raise
        except Exception as exc:  # one broken trial does not end the sweep; the report shows why
            log.error("trial %d failed: %s", trial.number, exc)
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:500])
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, values)
        ran += 1
        if on_trial is not None:
            on_trial(study.get_trials(deepcopy=False)[trial.number], sweep.budget)
    return study


def _connect(url: str, sweep: Sweep, attempts: int = 20) -> tuple[Any, Any]:
    """Storage and study. Workers started together race to create the database tables and the study; the
    loser of such a race (SQLite "table already exists" / "database is locked") tries again."""
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import SQLAlchemyError

    for attempt in range(attempts):
        try:
            storage = make_storage(url, sweep)
            return storage, open_study(sweep, storage)
        except (SQLAlchemyError, StorageInternalError) as exc:
            if attempt == attempts - 1:
                raise VlmkitError(f"sweep storage {_public_url(url)}: {exc}") from None
            time.sleep(0.25 + 0.25 * attempt)
    raise AssertionError("unreachable")


def _public_url(url: str) -> str:
    """The storage URL without a password."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
