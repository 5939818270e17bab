"""The one place that turns config into objects.

Components receive plain values and objects, never a DictConfig. Order matters: every value is
validated before any data is read, any backend is opened or any model is loaded, so a typo costs
nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from tinkerx.data.lengths import LengthReport, apply_length_rule, needs_of, token_limit
from tinkerx.errors import ConfigError, UserError
from tinkerx.pipeline import Pipeline
from tinkerx.runs.display import console
from tinkerx.runs.metered_clients import MeteredService
from tinkerx.runs.prices import PriceTable, check_priced, check_priced_endpoint, endpoint_table, table_from
from tinkerx.runs.recorder import RunRecorder
from tinkerx.runs.usage import UsageMeter


def instantiate(node: Any, where: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` that reports user mistakes as one-line ``UserError``s."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    try:
        return hydra_instantiate(node, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        while cause is not None and not isinstance(cause, UserError) and cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, UserError):
            raise cause from None
        if isinstance(cause, (TypeError, ValueError)):
            raise ConfigError(f"{where}: {cause}") from None
        raise


def build(cfg: DictConfig, run_dir: Path) -> tuple[Any, Pipeline, list[Any]]:
    """Returns (method, pipeline, things to close when the run ends)."""
    # 1. Values only: settings, the method's own options, the reward, the logger.
    optim = instantiate(cfg.optim, "optim")
    sampling = instantiate(cfg.sampling, "sampling")
    training = instantiate(cfg.training, "training")
    method = instantiate(cfg.method, "method")
    reward = instantiate(cfg.reward, "reward") if cfg.get("reward") is not None else None
    loggers = [instantiate(cfg.logger, "logger")] if cfg.get("logger") else []
    model_loader = instantiate(cfg.model.loader, "model.loader")
    backend = instantiate(cfg.backend, "backend", **_prefix_cache(cfg))
    if getattr(method, "trains", True) and not getattr(backend, "can_train", True):
        raise ConfigError(f"method={method.name} trains, but this backend ({type(backend).__name__}) only samples: use method=eval")
    if training.packing and not getattr(method, "packs", False):
        raise ConfigError(f"training.packing=true is for method=sft; method={method.name} trains unpacked: set training.packing=false")
    if training.packing and not getattr(backend, "packs", False):
        raise ConfigError("training.packing=true needs backend=local: Tinker's forward_backward cannot keep attention from crossing packed examples; set training.packing=false")
    # Method-specific parts (a judge, ...) are plain values too; the method wires them to the pipeline.
    components = {name: instantiate(node, f"components.{name}") for name, node in (cfg.get("components") or {}).items()}
    # A component with a model of its own (a judge on another model) exposes its ``model_loader``;
    # the backend serves it beside the policy's, so it samples through the same service.
    judges = evaluator_judges(cfg)  # evaluator.judges: rubric judges asked about every evaluated reply
    component_loaders = [c.model_loader for c in [*components.values(), reward, *judges] if getattr(c, "model_loader", None) is not None]
    if cfg.get("env") is not None:  # a multi-turn environment (conf/env/): its tasks, groups and episode limits
        components["env"] = instantiate(cfg.env, "env")

    # What tokens cost (conf/prices): a cost budget on a model without prices is refused now.
    prices = table_from(OmegaConf.to_container(cfg.prices, resolve=True) if cfg.get("prices") is not None else None)
    if training.max_cost is not None and getattr(backend, "can_train", True):  # an endpoint is priced by prices.endpoint
        check_priced(prices, [model_loader.base_model, *(m.base_model for m in component_loaders)])

    # 2. The backend first among the things that touch the outside: credentials fail fast.
    service = metered(backend.open([model_loader, *component_loaders], run_dir, seed=cfg.seed), cfg, prices, training, model_loader.base_model)
    if hasattr(service, "limit_tokens_per_forward"):  # the local backend; Tinker budgets its own passes
        service.limit_tokens_per_forward(training.max_tokens_per_forward)
    closers: list[Any] = [backend]

    # 3. Data, the reward checked against it, then the tokenizer and the evaluator.
    dataset = instantiate(cfg.dataset, "dataset")
    base_model = getattr(service, "served_model", None) or cfg.model.base_model  # an endpoint reports the model it serves
    tokenizer = model_loader.load_tokenizer()
    for judge in [reward, *judges]:  # a judge (reward=judge, evaluator.judges) samples through the run's service
        if callable(getattr(judge, "start", None)):
            judge.start(service, base_model, tokenizer, run_dir)
    if reward is not None:
        from tinkerx.rewards.guarded import checked

        reward = checked(reward, dataset.train[:4] or dataset.test[:4], timeout_s=cfg.reward_timeout_s)
    evaluator = None
    if cfg.get("evaluator") is not None:
        # ``evaluator.judge`` is the judges' template (built above), not an evaluator argument.
        node = {k: v for k, v in OmegaConf.to_container(cfg.evaluator, resolve=True).items() if k != "judge"}
        evaluator = instantiate(node, "evaluator", dataset=dataset, tokenizer=tokenizer, reward=reward, **({"judges": judges} if judges else {}))
    # 4. Lengths, where data and tokenizer meet: over-long examples dropped, cut or refused before step 1.
    lengths = check_lengths(cfg, method, sampling, evaluator, components, dataset, tokenizer)

    recorder = RunRecorder(run_dir, loggers)
    fresh = not (run_dir / "metrics.jsonl").stat().st_size  # a resumed run has its step-0 line already
    for logger in loggers:
        logger.start(run_dir, OmegaConf.to_container(cfg, resolve=True), name=run_dir.name)
    if lengths is not None and lengths.over:
        recorder.summary_additions["overlong"] = lengths.summary()
        if fresh:
            recorder.log_metrics(0, lengths.metrics())
    pipeline = Pipeline(
        run_dir=run_dir,
        seed=cfg.seed,
        service=service,
        base_model=base_model,
        lora_rank=cfg.model.lora_rank,
        tokenizer=tokenizer,
        dataset=dataset,
        recorder=recorder,
        optim=optim,
        sampling=sampling,
        training=training,
        reward=reward,
        evaluator=evaluator,
        components=components,
    )
    return method, pipeline, closers


def evaluator_judges(cfg: DictConfig) -> list[Any]:
    """One ``evaluator.judge`` per rubric named in ``evaluator.judges``."""
    node = cfg.get("evaluator")
    names = list(node.get("judges") or []) if node is not None else []
    if names and node.get("judge") is None:
        raise ConfigError("evaluator.judges needs evaluator.judge (the judge they ask; conf/evaluator/default.yaml has one)")
    return [instantiate(node.judge, f"evaluator.judges[{name}]", rubric=str(name)) for name in names]


def check_lengths(cfg: DictConfig, method: Any, sampling: Any, evaluator: Any, components: dict[str, Any], dataset: Any, tokenizer: Any) -> LengthReport | None:
    """Applies ``dataset.overlong`` (tinkerx/data/lengths.py) to every split the method and the
    evaluator read; warns once. None when the model records no context length or the data set has no rule."""
    if not hasattr(dataset, "overlong"):
        return None
    limit = token_limit(cfg.model.get("context_length"), dataset.max_length)
    if limit is None:
        return None
    report = apply_length_rule(dataset, tokenizer, needs_of(method, sampling.max_tokens, evaluator, components), *limit)
    if report.over:
        console.print(f"[yellow]warning:[/yellow] {report.warning()}")
    return report


def metered(service: Any, cfg: DictConfig, prices: PriceTable, training: Any, base_model: str) -> MeteredService:
    """The service with every client it hands out counting tokens (``tinkerx.runs.usage``). An
    endpoint counts its own (the ``usage`` of each reply), priced by ``prices.endpoint``."""
    reported = getattr(service, "usage", None)
    if callable(reported):
        model = getattr(service, "served_model", None) or base_model
        prices = endpoint_table(OmegaConf.to_container(cfg.prices.endpoint, resolve=True) if cfg.get("prices") and cfg.prices.get("endpoint") else None, model)
        if training.max_cost is not None:
            check_priced_endpoint(prices, model)
        return MeteredService(service, UsageMeter(prices, model, reported=reported))
    return MeteredService(service, UsageMeter(prices, base_model))


# backend.prefix_cache_tokens=auto: what a run whose later turns extend earlier ones keeps (conf/backend/local.yaml).
MULTI_TURN_PREFIX_CACHE_TOKENS = 16384


def _prefix_cache(cfg: DictConfig) -> dict[str, int]:
    """Resolves ``backend.prefix_cache_tokens: auto``: a cache only for multi-turn sampling, where it is read."""
    if cfg.backend.get("prefix_cache_tokens") != "auto":
        return {}
    env = cfg.get("env")
    multi_turn = (env is not None and (env.get("max_turns") or 1) > 1) or (
        cfg.method.get("training") == "rl" and str(cfg.method.get("_target_", "")).startswith("tinkerx.methods.debate"))
    return {"prefix_cache_tokens": MULTI_TURN_PREFIX_CACHE_TOKENS if multi_turn else 0}
