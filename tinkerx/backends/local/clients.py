"""In-process clients with the shape of the ``tinker`` SDK's.

Every call returns a ``concurrent.futures.Future`` (``.result()``) so a method can keep several
requests in flight exactly as it would against the service. One worker thread per service runs
requests in submission order, which is also what makes a seeded run reproducible.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import uuid
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import tinker
import torch
from tinker import types

from tinkerx.backends.local.engine import ModelEngine, WeightsSnapshot
from tinkerx.backends.local.rollout_worker import RolloutWorker
from tinkerx.runs.faults import kill_point

T = TypeVar("T")


class LocalServiceClient:
    """Creates training and sampling clients over models loaded in this process."""

    def __init__(self, model_loaders: Sequence[Any], *, device: torch.device, dtype: torch.dtype, checkpoint_dir: Path, seed: int = 0,
                 max_batch_rows: int | None = None, rollout_device: torch.device | None = None,
                 max_tokens_per_forward: int | None = None, prefix_cache_tokens: int = 0) -> None:
        self._loaders = {m.base_model: m for m in model_loaders}
        self.device, self.dtype = device, dtype
        self.checkpoint_dir = Path(checkpoint_dir)
        self.seed = seed
        self.max_batch_rows = max_batch_rows  # rows each engine decodes at once (None: all of a call)
        # Padded tokens one forward/backward pass holds (budget.py); None: each engine derives its own.
        self.max_tokens_per_forward = max_tokens_per_forward
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tinkerx-local")
        # Requests without a seed draw from this stream in submission order: reproducible per run.
        self._rng = torch.Generator().manual_seed(seed)
        self._base_engines: dict[str, ModelEngine] = {}
        self._ids = itertools.count()
        # Sampling clients of a training client sample on a copy of its model on this device, on
        # the copy's own thread (None: on the training model, between training calls).
        self.rollout_device = rollout_device
        self._rollout_workers: dict[int, RolloutWorker] = {}
        # Tokens of finished sequences each engine keeps for prompts that extend them (prefix_cache; 0: none).
        self.prefix_cache_tokens = prefix_cache_tokens
        self._engines: weakref.WeakSet[ModelEngine] = weakref.WeakSet()  # for the counters only: engines still go when their clients do

    def limit_tokens_per_forward(self, budget: int | None) -> None:
        """The token budget of the training clients made from here on (``training.max_tokens_per_forward``)."""
        self.max_tokens_per_forward = budget

    # The worker thread is the only place model code runs.
    def submit(self, fn: Callable[[], T]) -> "Future[T]":
        return self._executor.submit(fn)

    def next_seed(self) -> int:
        return int(torch.randint(0, 2**31 - 1, (1,), generator=self._rng))

    def rng_state(self) -> str:
        """The seed stream's position, saved with a resume point so a resumed run draws the same seeds."""
        from tinkerx.runs.rng import generator_state

        return generator_state(self._rng)

    def set_rng_state(self, state: str) -> None:
        from tinkerx.runs.rng import set_generator_state

        set_generator_state(self._rng, state)

    def loader(self, base_model: str) -> Any:
        if base_model not in self._loaders:
            raise ValueError(f"base model {base_model!r} is not loaded here; available: {', '.join(self._loaders)}")
        return self._loaders[base_model]

    def _engine(self, base_model: str, rank: int, seed: int, trainable: bool, **lora: bool) -> ModelEngine:
        engine = ModelEngine(self.loader(base_model), device=self.device, dtype=self.dtype, rank=rank, seed=seed, trainable=trainable,
                             max_batch_rows=self.max_batch_rows, max_tokens_per_forward=self.max_tokens_per_forward,
                             prefix_cache_tokens=self.prefix_cache_tokens, **lora)
        self._engines.add(engine)
        return engine

    def create_lora_training_client(
        self,
        base_model: str,
        rank: int = 32,
        seed: int | None = None,
        train_mlp: bool = True,
        train_attn: bool = True,
        train_unembed: bool = True,
        **_: Any,
    ) -> "Future[LocalTrainingClient]":
        """``rank=0`` means full fine-tuning (for tiny models; the service only offers LoRA)."""
        seed = self.seed if seed is None else seed

        def build() -> LocalTrainingClient:
            engine = self._engine(base_model, rank, seed, True, train_mlp=train_mlp, train_attn=train_attn, train_unembed=train_unembed)
            return LocalTrainingClient(self, engine, f"local-{next(self._ids)}")

        return self.submit(build)

    def create_training_client_from_state(self, path: str, with_optimizer: bool = False) -> "Future[LocalTrainingClient]":
        meta = _read_meta(path)
        future: Future[LocalTrainingClient] = Future()
        client = self.create_lora_training_client(meta["base_model"], rank=meta["rank"]).result()
        client.load_state_with_optimizer(path).result() if with_optimizer else client.load_state(path).result()
        future.set_result(client)
        return future

    def create_training_client_from_state_with_optimizer(self, path: str) -> "Future[LocalTrainingClient]":
        return self.create_training_client_from_state(path, with_optimizer=True)

    def create_sampling_client(self, model_path: str | None = None, base_model: str | None = None, **_: Any) -> "LocalSamplingClient":
        if model_path is not None:
            meta = _read_meta(model_path)
            client = self.create_lora_training_client(meta["base_model"], rank=meta["rank"]).result()
            client.load_state(model_path).result()
            return client.create_sampling_client_now()
        if base_model is None:
            raise ValueError("create_sampling_client needs model_path or base_model")

        def engine() -> ModelEngine:
            if base_model not in self._base_engines:
                self._base_engines[base_model] = self._engine(base_model, 0, self.seed, False)
            return self._base_engines[base_model]

        return LocalSamplingClient(self, self.submit(engine).result(), None)

    def get_tokenizer(self, base_model: str) -> Any:
        return self.loader(base_model).load_tokenizer()

    def rollout_worker(self, engine: ModelEngine) -> "RolloutWorker | None":
        """The rollout worker of a training engine (made at its first sampling client), or None
        when sampling runs on the training model."""
        if self.rollout_device is None:
            return None
        if id(engine) not in self._rollout_workers:
            self._rollout_workers[id(engine)] = RolloutWorker(engine, self.loader(engine.base_model), self.rollout_device)
        return self._rollout_workers[id(engine)]

    def prefix_cache_metrics(self) -> dict[str, int]:
        """Since the last read, over every engine: prompts that reused a kept sequence
        (``sample/prefix_cache_hits``) and the prompt tokens they did not prefill
        (``sample/prefix_cache_tokens_saved``). Empty with the cache off."""
        if not self.prefix_cache_tokens:
            return {}
        reads = [e.prefix_cache.counts_since_last_read() for e in [*self._engines, *(w.engine for w in self._rollout_workers.values())]]
        return {f"sample/prefix_cache_{name}": sum(r[name] for r in reads) for name in ("hits", "tokens_saved")}

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        for worker in self._rollout_workers.values():
            worker.close()


class LocalTrainingClient:
    def __init__(self, service: LocalServiceClient, engine: ModelEngine, model_id: str) -> None:
        self.service, self.engine, self.model_id = service, engine, model_id

    def _submit(self, fn: Callable[[], T]) -> "Future[T]":
        return self.service.submit(fn)

    def forward(self, data: Sequence[types.Datum], loss_fn: str, loss_fn_config: dict | None = None) -> "Future[types.ForwardBackwardOutput]":
        return self._submit(lambda: self._forward(data, loss_fn, loss_fn_config, backward=False))

    def forward_backward(self, data: Sequence[types.Datum], loss_fn: str, loss_fn_config: dict | None = None) -> "Future[types.ForwardBackwardOutput]":
        return self._submit(lambda: self._forward(data, loss_fn, loss_fn_config, backward=True))

    def _forward(self, data, loss_fn, loss_fn_config, backward: bool) -> types.ForwardBackwardOutput:
        logprobs, loss = self.engine.forward(data, loss_fn, loss_fn_config, backward)
        return types.ForwardBackwardOutput(
            loss_fn_output_type="TorchLossReturn",
            loss_fn_outputs=[{"logprobs": types.TensorData.from_torch(lp)} for lp in logprobs],
            metrics={"loss:sum": loss},
        )

    def forward_backward_custom(self, data: Sequence[types.Datum], loss_fn: Callable[..., Any], **_: Any) -> "Future[types.ForwardBackwardOutput]":
        """The SDK's custom loss: ``loss_fn(data, logprobs_list) -> (loss, metrics)`` on per-datum logprobs.

        The SDK gets the logprobs from a forward pass, differentiates ``loss_fn`` on the client and
        sends the gradient back as per-token weights; here the logprobs carry the graph, so one
        backward does both. ``loss:sum`` is the custom loss, as the SDK reports it.
        """
        return self._submit(lambda: self._forward_backward_custom(list(data), loss_fn))

    def _forward_backward_custom(self, data: list[types.Datum], loss_fn: Callable[..., Any]) -> types.ForwardBackwardOutput:
        logprobs, loss, metrics = self.engine.forward_backward_custom(data, loss_fn)
        return types.ForwardBackwardOutput(
            loss_fn_output_type="TorchLossReturn",
            loss_fn_outputs=[{"logprobs": types.TensorData.from_torch(lp)} for lp in logprobs],
            metrics={**metrics, "loss:sum": float(loss.sum())},
        )

    def optim_step(self, adam_params: types.AdamParams) -> "Future[types.OptimStepResponse]":
        p = adam_params
        return self._submit(
            lambda: types.OptimStepResponse(
                metrics=self.engine.optim_step(p.learning_rate, p.beta1, p.beta2, p.eps, p.weight_decay, p.grad_clip_norm)
            )
        )

    def _checkpoint_path(self, kind: str, name: str) -> Path:
        return self.service.checkpoint_dir / self.model_id / kind / name

    def _save(self, path: Path, with_optimizer: bool) -> None:
        # Written under a temporary name and renamed into place: a kill mid-write leaves the
        # previous checkpoint of that name (if any) whole and no half-written one behind.
        tmp = path.with_name(f".tmp-{path.name}-{uuid.uuid4().hex[:8]}")
        self.engine.save(tmp, with_optimizer=with_optimizer)
        kill_point("backend_checkpoint", self.engine.steps)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)

    def save_state(self, name: str, **_: Any) -> "Future[types.SaveWeightsResponse]":
        path = self._checkpoint_path("state", name)
        self._forget_kept_sequences()
        return self._submit(lambda: (self._save(path, with_optimizer=True), types.SaveWeightsResponse(path=str(path)))[1])

    def _forget_kept_sequences(self) -> None:
        """A saved state is where a resumed run continues, its prefix caches empty: emptied here too,
        the run that goes on samples what the resumed one samples (a hit's logprobs may differ from a
        whole prefill's in the last bits). Each cache is emptied on the thread that samples with it."""
        self._submit(self.engine.prefix_cache.clear)
        worker = self.service._rollout_workers.get(id(self.engine))
        if worker is not None:
            worker.submit(worker.engine.prefix_cache.clear)

    def save_weights_for_sampler(self, name: str, **_: Any) -> "Future[types.SaveWeightsForSamplerResponse]":
        path = self._checkpoint_path("sampler_weights", name)
        return self._submit(lambda: (self._save(path, with_optimizer=False), types.SaveWeightsForSamplerResponse(path=str(path)))[1])

    def load_state(self, path: str) -> "Future[types.LoadWeightsResponse]":
        return self._submit(lambda: (self.engine.load(Path(path), with_optimizer=False), types.LoadWeightsResponse(path=path))[1])

    def load_state_with_optimizer(self, path: str) -> "Future[types.LoadWeightsResponse]":
        return self._submit(lambda: (self.engine.load(Path(path), with_optimizer=True), types.LoadWeightsResponse(path=path))[1])

    def create_sampling_client_now(self) -> "LocalSamplingClient":
        snapshot = self._submit(self.engine.snapshot).result()
        worker = self.service.rollout_worker(self.engine)
        if worker is not None:  # sampling on a copy of the model, on its own thread, while this one trains
            return LocalSamplingClient(self.service, worker.engine, snapshot, submit=worker.submit)
        return LocalSamplingClient(self.service, self.engine, snapshot)

    def save_weights_and_get_sampling_client(self, name: str | None = None, **_: Any) -> "LocalSamplingClient":
        if name is not None:
            self.save_weights_for_sampler(name).result()
        return self.create_sampling_client_now()

    def get_info(self) -> types.GetInfoResponse:
        return types.GetInfoResponse(
            model_data={"arch": type(self.engine.model).__name__, "model_name": self.engine.base_model},
            model_id=self.model_id,
            is_lora=self.engine.rank > 0,
            lora_rank=self.engine.rank,
            model_name=self.engine.base_model,
        )

    def get_tokenizer(self) -> Any:
        return self.engine.tokenizer


class LocalSamplingClient:
    def __init__(self, service: LocalServiceClient, engine: ModelEngine, snapshot: WeightsSnapshot | None,
                 submit: Callable[[Callable[[], Any]], "Future[Any]"] | None = None) -> None:
        self.service, self.engine, self.snapshot = service, engine, snapshot
        # Where its model code runs: the service's worker, or a rollout worker's own thread.
        self._submit = submit or service.submit

    def sample(
        self,
        prompt: types.ModelInput,
        num_samples: int,
        sampling_params: types.SamplingParams,
        include_prompt_logprobs: bool = False,
        **_: Any,
    ) -> "Future[types.SampleResponse]":
        future = self.sample_many([prompt], num_samples, sampling_params)[0]
        if not include_prompt_logprobs:
            return future
        tokens = prompt.to_ints()
        return self._submit(
            lambda: types.SampleResponse(sequences=future.result().sequences, _prompt_logprobs_list=self._prompt_logprobs(tokens))
        )

    def sample_many(
        self, prompts: Sequence[types.ModelInput], num_samples: int, sampling_params: types.SamplingParams, seeds: Sequence[int] | None = None
    ) -> "list[Future[types.SampleResponse]]":
        """Like one ``sample`` call per prompt, but decoded as a single batch (``seeds``: one per
        prompt, in place of ``sampling_params.seed``).

        The batch is fixed by the call, not by what happens to be queued, so results are the same
        on every run with the same seed.
        """
        if sampling_params.max_tokens is None or sampling_params.max_tokens < 1:
            raise ValueError(f"sampling max_tokens must be >= 1, got {sampling_params.max_tokens}")
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        token_lists = [p.to_ints() for p in prompts]
        # One seed per prompt, drawn at submission in call order: a prompt gets the same samples
        # whether it is sent alone or in a batch, and a rerun gets the same seeds.
        if seeds is None:
            seeds = [sampling_params.seed if sampling_params.seed is not None else self.service.next_seed() for _ in token_lists]
        elif len(seeds) != len(token_lists):
            raise ValueError(f"{len(token_lists)} prompts need as many seeds, got {len(seeds)}")
        seeds = list(seeds)
        futures: list[Future[types.SampleResponse]] = [Future() for _ in token_lists]

        def run() -> None:
            try:
                per_prompt = self.engine.sample(self.snapshot, token_lists, num_samples, sampling_params, seeds)
            except BaseException as e:  # every caller's future must hear about the failure
                for f in futures:
                    f.set_exception(e)
                return
            for f, rows in zip(futures, per_prompt):
                f.set_result(
                    types.SampleResponse(
                        sequences=[
                            types.SampledSequence(stop_reason=r.stop_reason, sequence_id=uuid.uuid4().hex, _tokens_list=r.tokens, _logprobs_list=r.logprobs)
                            for r in rows
                        ]
                    )
                )

        self._submit(run)
        return futures

    def _prompt_logprobs(self, tokens: list[int], last_tokens: Sequence[int] | None = None) -> Any:
        """Logprobs of ``tokens``; given ``last_tokens``, one list per ``tokens[:-1] + [t]``, all from this one forward."""
        self.engine._use_snapshot(self.snapshot)
        with torch.no_grad():
            ids = torch.tensor([tokens], device=self.engine.device)
            logp = torch.log_softmax(self.engine.model(input_ids=ids).logits.float(), dim=-1)[0]
        shared = [None] + logp[:-1].gather(-1, ids[0, 1:, None]).squeeze(-1).tolist()
        if last_tokens is None:
            return shared
        return [shared[:-1] + [float(logp[-2, t])] if len(tokens) > 1 else shared for t in last_tokens]

    def compute_logprobs(self, prompt: types.ModelInput) -> "Future[list[float | None]]":
        tokens = prompt.to_ints()
        return self._submit(lambda: self._prompt_logprobs(tokens))

    def compute_logprobs_many(self, prompts: Sequence[types.ModelInput]) -> "list[Future[list[float | None]]]":
        """Like one ``compute_logprobs`` per prompt, in one request: prompts that differ only in their
        last token (a judge's labels after the same text) share one forward, a fraction of the cost."""
        token_lists = [p.to_ints() for p in prompts]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, tokens in enumerate(token_lists):
            groups.setdefault(tuple(tokens[:-1]), []).append(i)
        futures: list[Future[list[float | None]]] = [Future() for _ in token_lists]

        def run() -> None:
            try:
                for members in groups.values():
                    rows = self._prompt_logprobs(token_lists[members[0]], [token_lists[i][-1] for i in members])
                    for i, row in zip(members, rows):
                        futures[i].set_result(row)
            except BaseException as e:  # every caller's future must hear about the failure
                for f in futures:
                    if not f.done():
                        f.set_exception(e)

        self._submit(run)
        return futures

    def compute_topk_logprobs_many(self, prompts: Sequence[types.ModelInput], k: int) -> "Future[list[tuple[list, list]]]":
        """Per prompt, (logprob of each token, its position's top-k (token, logprob)), one forward per
        prompt, alone, so a prompt scores the same in any batch (evaluation harnesses: echo, is_greedy)."""
        token_lists = [p.to_ints() for p in prompts]

        def run() -> list[tuple[list, list]]:
            self.engine._use_snapshot(self.snapshot)
            rows = []
            for tokens in token_lists:
                with torch.no_grad():
                    ids = torch.tensor([tokens], device=self.engine.device)
                    logp = torch.log_softmax(self.engine.model(input_ids=ids).logits.float(), dim=-1)[0, :-1]
                values, indices = logp.topk(min(k, logp.shape[-1]), dim=-1)
                top = [list(zip(i, v)) for i, v in zip(indices.tolist(), values.tolist())]
                rows.append(([None] + logp.gather(-1, ids[0, 1:, None]).squeeze(-1).tolist(), [None] + top))
            return rows

        return self._submit(run)

    def get_tokenizer(self) -> Any:
        return self.engine.tokenizer

    def result(self, timeout: float | None = None) -> "LocalSamplingClient":
        """The SDK hands out sampling clients as futures; this one is ready at once."""
        return self

    def get_base_model(self) -> str:
        return self.engine.base_model


def _read_meta(path: str) -> dict[str, Any]:
    meta = Path(path) / "meta.json"
    if not meta.is_file():
        raise FileNotFoundError(f"not a tinkerx checkpoint (no meta.json): {path}")
    return json.loads(meta.read_text())


__all__ = ["LocalServiceClient", "LocalTrainingClient", "LocalSamplingClient", "tinker"]
