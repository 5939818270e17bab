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

from tinkerx.backends.local.generation import Generated, sample_batch
from tinkerx.backends.local.losses import LOSS_INPUTS, LOSSES, check_loss_name

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
    ) -> None:
        self.base_model = model_loader.base_model
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
        self.optimizer: torch.optim.Optimizer | None = None
        self.version = 0
        self.steps = 0
        self._sampling_version = 0  # the snapshot version currently loaded in the live model

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
    def _batch_logprobs(self, data: Sequence[Any]) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
        inputs = [d.model_input.to_ints() for d in data]
        lengths = [len(x) for x in inputs]
        width = max(lengths)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.full((len(inputs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(inputs), width), dtype=torch.long)
        for i, row in enumerate(inputs):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        targets = torch.zeros_like(ids)
        loss_inputs = []
        for i, d in enumerate(data):
            fields = {k: v.to_torch() for k, v in d.loss_fn_inputs.items()}
            row_targets = fields.pop("target_tokens").long()
            if row_targets.shape[0] != lengths[i]:
                raise ValueError(
                    f"datum {i}: target_tokens has {row_targets.shape[0]} entries but model_input has {lengths[i]} tokens"
                )
            targets[i, : lengths[i]] = row_targets
            loss_inputs.append({k: v.float().to(self.device) for k, v in fields.items()})
        logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
        # Fused log-softmax + gather: never materialises a second [batch, length, vocab] tensor,
        # which for a 49k vocabulary is most of the memory a training step needs.
        logp = -torch.nn.functional.cross_entropy(
            logits.float().flatten(0, 1), targets.to(self.device).flatten(), reduction="none"
        ).view(ids.shape)
        per_datum = [logp[i, : lengths[i]] for i in range(len(data))]
        return per_datum, loss_inputs

    def forward(self, data: Sequence[Any], loss_fn: str, loss_fn_config: dict | None, backward: bool):
        check_loss_name(loss_fn)
        if not data:
            raise ValueError("forward needs at least one datum")
        needed = LOSS_INPUTS[loss_fn]
        for i, d in enumerate(data):
            missing = [k for k in ("target_tokens",) + needed if k not in d.loss_fn_inputs]
            if missing:
                raise ValueError(f"datum {i}: loss_fn {loss_fn!r} needs loss_fn_inputs {', '.join(missing)}")
        self._ensure_live_weights()
        config = loss_fn_config or {}
        grad = torch.enable_grad() if backward else torch.no_grad()
        with grad:
            logprobs, inputs = self._batch_logprobs(data)
            losses = [LOSSES[loss_fn](lp, inp, config) for lp, inp in zip(logprobs, inputs)]
            total = torch.stack(losses).sum()
            if backward:
                if not self.trainable:
                    raise RuntimeError(f"{self.base_model} is loaded for sampling only")
                total.backward()
        return [lp.detach().cpu() for lp in logprobs], float(total.detach())

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
        )
