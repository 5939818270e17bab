"""One model in memory: forward/backward with Tinker losses, AdamW steps, checkpoints, sampling.

The engine owns the live (training) weights. A sampling client holds a snapshot of the trainable
tensors taken when it was created; sampling swaps the snapshot in only when the live weights have
moved on since, so the usual loop (save -> sample -> train -> step) never copies anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import torch

from tinkerx.backends.local.budget import auto_token_budget, micro_batches, padded_tokens
from tinkerx.backends.local.generation import Generated, sample_batch
from tinkerx.backends.local.losses import LOSS_INPUTS, LOSSES, check_loss_name
from tinkerx.backends.local.memory import memory_guard
from tinkerx.backends.local.prefill import cache_kwarg
from tinkerx.backends.local.prefix_cache import PrefixCache
from tinkerx.backends.local.rows import SEGMENTS, Row, grad_positions, packed_attention, shared_prefix_groups, target_logprobs

LORA_ALPHA = 32  # Tinker's LoRA scaling; kept fixed so the rank alone sets capacity

ATTN_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj"]
MLP_MODULES = ["gate_proj", "up_proj", "down_proj"]


class WeightsSnapshot:
    """Trainable tensors at one optimizer version, detached copies."""

    def __init__(self, version: int, tensors: dict[str, torch.Tensor] | None) -> None:
        self.version = version
        self.tensors = tensors


class ModelEngine:
    def __init__(
        self,
        model_loader: Any,
        *,
        device: torch.device,
        dtype: torch.dtype,
        rank: int,
        seed: int,
        train_mlp: bool = True,
        train_attn: bool = True,
        train_unembed: bool = True,
        trainable: bool = True,
        max_batch_rows: int | None = None,
        max_tokens_per_forward: int | None = None,
        prefix_cache_tokens: int = 0,
    ) -> None:
        self.base_model = model_loader.base_model
        self.max_batch_rows = max_batch_rows
        self.tokenizer = model_loader.load_tokenizer()
        self.device, self.dtype, self.rank = device, dtype, rank
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # LoRA init draws from the global RNG
            model = model_loader.load_model(device, dtype)
            if trainable and rank > 0:
                model = self._attach_lora(model, rank, train_mlp, train_attn, train_unembed)
        self.model = model.to(device)
        for p in self.model.parameters():
            p.requires_grad_(trainable and (rank == 0 or p.requires_grad))
        self.model.eval()  # no dropout anywhere: sampler and trainer must agree on logprobs
        self.trainable = trainable
        self.lora = {"train_mlp": train_mlp, "train_attn": train_attn, "train_unembed": train_unembed}
        self.seed = seed
        # Finished sequences' KV caches, reused by prompts that extend them (the next turn of an episode).
        self.prefix_cache = PrefixCache(prefix_cache_tokens)
        self.optimizer: torch.optim.Optimizer | None = None
        self.version = 0
        self.steps = 0
        self._sampling_version = 0  # the snapshot version currently loaded in the live model
        # Padded tokens one forward/backward pass may hold (budget.py); None: derived from the model and the device's memory.
        self.budget_is_auto = max_tokens_per_forward is None
        self.token_budget = max_tokens_per_forward if max_tokens_per_forward is not None else auto_token_budget(
            self.model.config, torch.finfo(dtype).bits // 8, device)

    @staticmethod
    def _attach_lora(model, rank: int, train_mlp: bool, train_attn: bool, train_unembed: bool):
        from peft import LoraConfig, get_peft_model

        names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
        targets = [m for m in (ATTN_MODULES if train_attn else []) + (MLP_MODULES if train_mlp else []) if m in names]
        if not targets:
            raise ValueError("LoRA needs at least one of train_attn / train_mlp")
        config = LoraConfig(
            r=rank,
            lora_alpha=LORA_ALPHA,
            lora_dropout=0.0,
            target_modules=targets,
            modules_to_save=None,
        )
        model = get_peft_model(model, config)
        if train_unembed:
            # Tied embeddings stay frozen: training the unembedding would also move the input embedding.
            head = model.get_output_embeddings()
            if head is not None and head.weight is not model.get_input_embeddings().weight:
                head.weight.requires_grad_(True)
        return model

    # ---- weights -------------------------------------------------------------------------
    def trainable_named(self) -> list[tuple[str, torch.nn.Parameter]]:
        return [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]

    def snapshot(self) -> WeightsSnapshot:
        return WeightsSnapshot(self.version, {n: p.detach().clone() for n, p in self.trainable_named()})

    def _load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, value in tensors.items():
                params[name].copy_(value)

    # ---- forward / backward ----------------------------------------------------------------
    def _parse(self, data: Sequence[Any], loss_fn: str, backward: bool) -> list[Row]:
        rows = []
        for i, d in enumerate(data):
            tokens = d.model_input.to_ints()
            fields = {k: v.to_torch() for k, v in d.loss_fn_inputs.items()}
            targets = fields.pop("target_tokens").long()
            segments = fields.pop(SEGMENTS, None)  # a packed datum's example boundaries: not a loss input
            if targets.shape[0] != len(tokens) or (segments is not None and segments.shape[0] != len(tokens)):
                raise ValueError(f"datum {i}: target_tokens and segment_ids need one entry per model_input token ({len(tokens)})")
            inputs = {k: v.float().to(self.device) for k, v in fields.items()}
            rows.append(Row(tokens, targets, inputs, grad_positions(loss_fn, inputs, len(tokens), backward),
                            None if segments is None else segments.long()))
        return rows

    def _batch_logprobs(self, rows: list["Row"]) -> list[torch.Tensor]:
        """Every datum's per-position logprobs of its targets, in one pass per shared prompt."""
        out: list[torch.Tensor | None] = [None] * len(rows)
        for prefix_len, members in self._chunks(rows):
            for i, lp in zip(members, self._chunk_logprobs(rows, prefix_len, members)):
                out[i] = lp
        return out  # type: ignore[return-value]

    def _chunks(self, rows: list["Row"]) -> list[tuple[int, list[int]]]:
        """(prefix length, member indices) of the datums computed together.

        Datums that start with the same tokens up to their first trained position (the samples of
        one GRPO group) run that prompt once; its KV cache is repeated across their completions,
        and the gradient of every completion flows back into the one prompt pass. The vocabulary
        projection runs with autograd only where the loss has a gradient; elsewhere (the prompt,
        once per group) without, so the outputs are the same as the per-sample computation.
        Datums with nothing to share form one last chunk with prefix length 0.
        """
        chunks, singles = [], []
        for prefix_len, members in shared_prefix_groups(rows):
            if prefix_len and len(members) > 1 and self._can_share_prefix():
                chunks.append((prefix_len, members))
            else:
                singles += members
        return chunks + ([(0, singles)] if singles else [])

    def _chunk_logprobs(self, rows: list["Row"], prefix_len: int, members: list[int]) -> list[torch.Tensor]:
        picked = [rows[i] for i in members]
        return self._prefix_shared_logprobs(picked, prefix_len) if prefix_len else self._plain_logprobs(picked)

    def _parts(self) -> tuple[Any, Any]:
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        return base.get_decoder(), base.get_output_embeddings()

    def _can_share_prefix(self) -> bool:
        # Models whose logits are more than head(hidden) (soft-capping, scaling) take the plain path.
        config = self.model.config
        return not getattr(config, "final_logit_softcapping", None) and getattr(config, "logits_scaling", 1.0) in (None, 1.0)

    def _plain_logprobs(self, rows: list["Row"]) -> list[torch.Tensor]:
        width = max(len(r.tokens) for r in rows)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        targets = torch.zeros_like(ids)
        grad = torch.zeros((len(rows), width), dtype=torch.bool)
        for i, r in enumerate(rows):
            n = len(r.tokens)
            ids[i, :n], mask[i, :n], targets[i, :n], grad[i, :n] = torch.tensor(r.tokens), 1, r.targets, r.grad
        attention = {"attention_mask": mask.to(self.device)}
        if any(r.segments is not None for r in rows):
            attention = self._packed_attention(rows, width)
        if self._can_share_prefix():
            decoder, head = self._parts()
            hidden = decoder(input_ids=ids.to(self.device), **attention).last_hidden_state
            logp = target_logprobs(head, hidden, targets.to(self.device), mask.bool().to(self.device), grad.to(self.device))
        else:
            logits = self.model(input_ids=ids.to(self.device), **attention).logits
            logp = -torch.nn.functional.cross_entropy(
                logits.float().flatten(0, 1), targets.to(self.device).flatten(), reduction="none"
            ).view(ids.shape)
        return [logp[i, : len(r.tokens)] for i, r in enumerate(rows)]

    def _packed_attention(self, rows: list["Row"], width: int) -> dict[str, Any]:
        """The keyword arguments that keep a batch's packed examples apart (rows.packed_attention)."""
        implementation = getattr(self.model.config, "_attn_implementation", None)
        if implementation not in ("sdpa", "eager"):
            raise ValueError(f"packed datums need sdpa or eager attention (a 4-D mask), but {self.base_model} uses {implementation}")
        segments = torch.full((len(rows), width), -1, dtype=torch.long)  # padding: a segment of its own
        for i, r in enumerate(rows):
            segments[i, : len(r.tokens)] = r.segments if r.segments is not None else 0
        mask, positions = packed_attention(segments.to(self.device), self.dtype)
        return {"attention_mask": mask, "position_ids": positions, "use_cache": False}

    def _prefix_shared_logprobs(self, rows: list["Row"], prefix_len: int) -> list[torch.Tensor]:
        from transformers import DynamicCache

        decoder, head = self._parts()
        prefix = torch.tensor([rows[0].tokens[:prefix_len]], device=self.device)
        cache = DynamicCache(config=self.model.config)
        prefix_hidden = decoder(input_ids=prefix, **cache_kwarg(decoder, cache)).last_hidden_state[0]
        with torch.no_grad():  # the prompt's own positions carry no loss gradient: projected once, for the outputs
            prefix_logp = torch.log_softmax(head(prefix_hidden.detach()).float(), dim=-1)
        cache.batch_repeat_interleave(len(rows))
        width = max(len(r.tokens) for r in rows) - prefix_len
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        targets = torch.zeros_like(ids)
        valid = torch.zeros((len(rows), width), dtype=torch.bool)
        grad = torch.zeros_like(valid)
        for i, r in enumerate(rows):
            n = len(r.tokens) - prefix_len
            ids[i, :n], targets[i, :n], valid[i, :n], grad[i, :n] = torch.tensor(r.tokens[prefix_len:]), r.targets[prefix_len:], True, r.grad[prefix_len:]
        # Right padding needs no mask: under causal attention a valid position never sees a later one.
        hidden = decoder(input_ids=ids.to(self.device), **cache_kwarg(decoder, cache)).last_hidden_state
        suffix_logp = target_logprobs(head, hidden, targets.to(self.device), valid.to(self.device), grad.to(self.device))
        out = []
        for i, r in enumerate(rows):
            head_part = prefix_logp.gather(-1, r.targets[:prefix_len, None].to(self.device)).squeeze(-1)
            out.append(torch.cat([head_part, suffix_logp[i, : len(r.tokens) - prefix_len]]))
        return out

    def forward(self, data: Sequence[Any], loss_fn: str, loss_fn_config: dict | None, backward: bool):
        check_loss_name(loss_fn)
        if not data:
            raise ValueError("forward needs at least one datum")
        needed = LOSS_INPUTS[loss_fn]
        for i, d in enumerate(data):
            missing = [k for k in ("target_tokens",) + needed if k not in d.loss_fn_inputs]
            if missing:
                raise ValueError(f"datum {i}: loss_fn {loss_fn!r} needs loss_fn_inputs {', '.join(missing)}")
        if backward and not self.trainable:
            raise RuntimeError(f"{self.base_model} is loaded for sampling only")
        self._ensure_live_weights()
        config = loss_fn_config or {}
        rows = self._parse(data, loss_fn, backward)
        logprobs: list[torch.Tensor | None] = [None] * len(rows)
        total = 0.0
        with memory_guard(self, rows, backward), torch.enable_grad() if backward else torch.no_grad():
            for prefix_len, members in self._micro_batches(rows):
                chunk = self._chunk_logprobs(rows, prefix_len, members)
                loss = torch.stack([LOSSES[loss_fn](lp, rows[i].inputs, config) for i, lp in zip(members, chunk)]).sum()
                if backward and loss.requires_grad:
                    # Each micro-batch's backward runs before the next one's forward: the loss is a
                    # sum over datums, so the gradients are the same, and only one micro-batch's
                    # activations are held at a time (a GRPO batch of many groups peaks at one
                    # group's memory; a batch of long sequences at the token budget's).
                    loss.backward()
                total += float(loss.detach())
                for i, lp in zip(members, chunk):
                    logprobs[i] = lp.detach().cpu()
        return logprobs, total  # type: ignore[return-value]

    def forward_backward_custom(self, data: Sequence[Any], loss_fn: Any) -> tuple[list[torch.Tensor], Any, dict[str, float]]:
        """The SDK's custom loss ``loss_fn(data, logprobs_list) -> (loss, metrics)``: (logprobs, loss, metrics).

        A batch within the token budget runs as one pass, its logprobs carrying the graph into the
        loss. A larger one runs as the SDK runs every custom loss: a forward without gradients, the
        loss differentiated with respect to the logprobs alone, then per micro-batch a forward with
        gradients and a backward of ``sum(logprobs * dloss/dlogprobs)``. By the chain rule that is
        the same gradient, for losses that couple datums (DPO's pairs, a mean over the batch) too.
        """
        if not data:
            raise ValueError("No data provided")
        if not self.trainable:
            raise RuntimeError(f"{self.base_model} is loaded for sampling only")
        self._ensure_live_weights()
        # A custom loss may read any position: parse as a dense loss, every logprob with a gradient.
        rows = self._parse(data, "custom", backward=True)
        with memory_guard(self, rows, backward=True):
            lengths = [len(r.tokens) for r in rows]
            # One pass holds every chunk's graph until the loss is known: it must fit the budget whole.
            if self.token_budget is None or sum(padded_tokens([lengths[i] for i in m]) for _, m in self._chunks(rows)) <= self.token_budget:
                with torch.enable_grad():
                    logprobs = self._batch_logprobs(rows)
                    loss, metrics = loss_fn(data, logprobs)
                    loss.sum().backward()
                return [lp.detach().cpu() for lp in logprobs], loss.detach(), metrics
            batches = self._micro_batches(rows)
            with torch.no_grad():
                detached: list[torch.Tensor | None] = [None] * len(rows)
                for prefix_len, members in batches:
                    for i, lp in zip(members, self._chunk_logprobs(rows, prefix_len, members)):
                        detached[i] = lp
            leaves = [lp.detach().requires_grad_(True) for lp in detached]  # type: ignore[union-attr]
            with torch.enable_grad():
                loss, metrics = loss_fn(data, leaves)
                loss.sum().backward()
            with torch.enable_grad():
                for prefix_len, members in batches:
                    chunk = self._chunk_logprobs(rows, prefix_len, members)
                    # A datum the loss does not read has no gradient: it contributes nothing.
                    terms = [(lp * leaves[i].grad).sum() for i, lp in zip(members, chunk) if leaves[i].grad is not None]
                    surrogate = torch.stack(terms).sum() if terms else None
                    if surrogate is not None and surrogate.requires_grad:
                        surrogate.backward()
            return [lp.detach().cpu() for lp in leaves], loss.detach(), metrics

    def _micro_batches(self, rows: list["Row"]) -> list[tuple[int, list[int]]]:
        """``_chunks`` cut to the token budget: (prefix length, members) per forward pass."""
        lengths = [len(r.tokens) for r in rows]
        return [(prefix_len, part) for prefix_len, members in self._chunks(rows) for part in micro_batches(lengths, members, self.token_budget)]

    # ---- optimizer -------------------------------------------------------------------------
    def optim_step(self, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float, grad_clip_norm: float) -> dict[str, float]:
        self._ensure_live_weights()
        params = [p for _, p in self.trainable_named()]
        if self.optimizer is None:
            self.optimizer = torch.optim.AdamW(params, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay)
        for group in self.optimizer.param_groups:
            group.update(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay)
        grads = [p.grad for p in params if p.grad is not None]
        grad_norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))) if grads else 0.0
        if grad_clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, grad_clip_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.version += 1
        self._sampling_version = self.version
        self.steps += 1
        return {"grad_norm": grad_norm, "learning_rate": lr}

    # ---- checkpoints -----------------------------------------------------------------------
    def save(self, directory: Path, with_optimizer: bool) -> None:
        from safetensors.torch import save_file

        self._ensure_live_weights()
        directory.mkdir(parents=True, exist_ok=True)
        save_file({n: p.detach().contiguous().cpu() for n, p in self.trainable_named()}, str(directory / "weights.safetensors"))
        if with_optimizer and self.optimizer is not None:
            torch.save(self.optimizer.state_dict(), directory / "optimizer.pt")
        meta = {"base_model": self.base_model, "rank": self.rank, "steps": self.steps, "version": self.version}
        (directory / "meta.json").write_text(json.dumps(meta, indent=2))

    def load(self, directory: Path, with_optimizer: bool) -> None:
        from safetensors.torch import load_file

        tensors = load_file(str(directory / "weights.safetensors"), device=str(self.device))
        unknown = set(tensors) - {n for n, _ in self.trainable_named()}
        if unknown:
            raise ValueError(f"checkpoint {directory} does not match {self.base_model} (rank {self.rank}): e.g. {sorted(unknown)[0]}")
        self._ensure_live_weights()
        self._load_tensors(tensors)
        meta = json.loads((directory / "meta.json").read_text())
        self.steps = int(meta.get("steps", 0))
        self.optimizer = None
        optimizer_file = directory / "optimizer.pt"
        if with_optimizer and optimizer_file.exists():
            params = [p for _, p in self.trainable_named()]
            self.optimizer = torch.optim.AdamW(params)
            self.optimizer.load_state_dict(torch.load(optimizer_file, map_location=self.device))
        self.version += 1
        self._sampling_version = self.version

    # ---- sampling --------------------------------------------------------------------------
    def _ensure_live_weights(self) -> None:
        if self._sampling_version != self.version:
            self._load_tensors(self._live.tensors)
            self._sampling_version = self.version

    def _use_snapshot(self, snapshot: WeightsSnapshot | None) -> None:
        if snapshot is None or snapshot.version == self._sampling_version:
            return
        if self._sampling_version == self.version:
            self._live = self.snapshot()  # keep the training weights to swap back before training
        if snapshot.version == self.version:
            self._load_tensors(self._live.tensors)
        else:
            self._load_tensors(snapshot.tensors)
        self._sampling_version = snapshot.version

    def sample(self, snapshot: WeightsSnapshot | None, prompts: list[list[int]], num_samples: int, params: Any, seeds: list[int]) -> list[list[Generated]]:
        self._use_snapshot(snapshot)
        # Kept keys and values are only valid for the weights that computed them: a snapshot's version
        # names them (an optimizer step or a load makes a new one); without one, whatever is loaded.
        self.prefix_cache.bind(snapshot.version if snapshot is not None else ("loaded", self._sampling_version))
        stop = params.stop
        stop_strings: list[str] = []
        stop_ids: set[int] = {self.tokenizer.eos_token_id} if self.tokenizer.eos_token_id is not None else set()
        if isinstance(stop, str):
            stop_strings = [stop]
        elif stop:
            for s in stop:
                (stop_strings.append(s) if isinstance(s, str) else stop_ids.add(int(s)))
        return sample_batch(
            self.model,
            prompts,
            num_samples,
            max_tokens=params.max_tokens,
            temperature=params.temperature,
            top_k=params.top_k,
            top_p=params.top_p,
            stop_token_ids=stop_ids,
            stop_strings=stop_strings,
            decode=lambda toks: self.tokenizer.decode(toks, skip_special_tokens=False),
            generators=[torch.Generator(device=self.device).manual_seed(s) for s in seeds],
            pad_token_id=self.tokenizer.pad_token_id or 0,
            max_rows=self.max_batch_rows,
            prefix_cache=self.prefix_cache,
        )
