"""Which calls of the installed tinker SDK work against ``tinkerx.serve``: a generated matrix.

    python -m tinkerx.serve.compat                      # writes docs/sdk-compatibility.md
    python -m tinkerx.serve.compat --check docs/sdk-compatibility.md   # exit 1 if a call that worked broke

Enumerates the public methods of the SDK's clients (``ServiceClient``, ``TrainingClient``,
``SamplingClient``, ``RestClient``; deprecated ``*_async`` aliases are left out) and its loss names,
runs each once against a tiny-model server on loopback, and records "works" or "not served" with the
first line of the error. A method the SDK added since this file was written shows as "not exercised".
"""

from __future__ import annotations

import argparse
import concurrent.futures
import inspect
import os
import re
import sys
import tempfile
import threading
import typing
from pathlib import Path
from typing import Any, Callable

CLIENTS = ("ServiceClient", "TrainingClient", "SamplingClient", "RestClient")
DOC = Path(__file__).resolve().parents[2] / "docs" / "sdk-compatibility.md"
CALL_TIMEOUT_S = 30


class Env:
    """The clients and saved paths the calls share; built lazily, in the order the calls need them."""

    def __init__(self, url: str, key: str) -> None:
        import tinker

        self.tinker = tinker
        self.types = tinker.types
        self.service = tinker.ServiceClient(base_url=url, api_key=key)
        self.base = "tinkerx/tiny"
        self.tc = self.service.create_lora_training_client(self.base, rank=4, seed=0).result()
        self.state = self.tc.save_state("compat-state").result().path
        self.sampler_path = self.tc.save_weights_for_sampler("compat-sampler").result().path
        self.sampler = self.service.create_sampling_client(base_model=self.base).result()
        self.rest = self.service.create_rest_client()
        self.session_id = self.tc.model_id.split(":")[0]

    def datums(self, loss: str = "cross_entropy") -> list[Any]:
        tokens, targets = [5, 17, 33, 48], [17, 33, 48, 90]
        inputs: dict[str, Any] = {"target_tokens": targets}
        if loss == "cross_entropy":
            inputs["weights"] = [1.0] * 4
        else:
            inputs |= {"logprobs": [-1.0] * 4, "advantages": [1.0, -1.0, 0.5, 0.0]}
        return [self.tinker.Datum(model_input=self.tinker.ModelInput.from_ints(tokens), loss_fn_inputs=inputs)]

    def prompt(self) -> Any:
        return self.types.ModelInput.from_ints([5, 17, 33])


def _custom_loss(data, logprobs):
    import torch

    loss = sum(-lp.sum() for lp in logprobs) if logprobs else torch.tensor(0.0)
    return loss, {"custom": float(loss)}


def _calls(e: Env) -> dict[str, Callable[[], Any]]:
    t, r = e.types, e.rest
    params = t.SamplingParams(max_tokens=4, seed=1)
    return {
        "ServiceClient.close": lambda: e.tinker.ServiceClient(base_url=e.service_url, api_key=e.key).close("success"),
        "ServiceClient.copy_weights": lambda: e.service.copy_weights(e.state).result(),
        "ServiceClient.create_custom_loss": lambda: e.service.create_custom_loss(_custom_loss, {}).result(),
        "ServiceClient.create_lora_training_client": lambda: e.service.create_lora_training_client(e.base, rank=2).result(),
        "ServiceClient.create_rest_client": lambda: e.service.create_rest_client(),
        "ServiceClient.create_sampling_client": lambda: e.service.create_sampling_client(model_path=e.sampler_path).result(),
        "ServiceClient.create_training_client_from_state": lambda: e.service.create_training_client_from_state(e.state).result(),
        "ServiceClient.create_training_client_from_state_with_optimizer": lambda: e.service.create_training_client_from_state_with_optimizer(e.state).result(),
        "ServiceClient.get_console_url": lambda: e.service.get_console_url(),
        "ServiceClient.get_server_capabilities": lambda: e.service.get_server_capabilities(),
        "ServiceClient.get_telemetry": lambda: e.service.get_telemetry(),
        "TrainingClient.create_sampling_client": lambda: e.tc.create_sampling_client(e.sampler_path).result(),
        "TrainingClient.forward": lambda: e.tc.forward(e.datums(), "cross_entropy").result(),
        "TrainingClient.forward_backward": lambda: e.tc.forward_backward(e.datums(), "cross_entropy").result(),
        "TrainingClient.forward_backward_custom": lambda: e.tc.forward_backward_custom(e.datums(), _custom_loss).result(),
        "TrainingClient.get_console_url": lambda: e.tc.get_console_url(),
        "TrainingClient.get_info": lambda: e.tc.get_info(),
        "TrainingClient.get_telemetry": lambda: e.tc.get_telemetry(),
        "TrainingClient.get_tokenizer": lambda: e.tc.get_tokenizer().encode("1 + 1"),
        "TrainingClient.load_state": lambda: e.tc.load_state(e.state).result(),
        "TrainingClient.load_state_with_optimizer": lambda: e.tc.load_state_with_optimizer(e.state).result(),
        "TrainingClient.optim_step": lambda: e.tc.optim_step(t.AdamParams(learning_rate=1e-3)).result(),
        "TrainingClient.save_state": lambda: e.tc.save_state("compat-save").result(),
        "TrainingClient.save_weights_and_get_sampling_client": lambda: e.tc.save_weights_and_get_sampling_client().result(),
        "TrainingClient.save_weights_external": lambda: e.tc.save_weights_external("compat-external").result(),
        "TrainingClient.save_weights_for_sampler": lambda: e.tc.save_weights_for_sampler("compat-save-sampler").result(),
        "SamplingClient.compute_logprobs": lambda: e.sampler.compute_logprobs(e.prompt()).result(),
        "SamplingClient.create": lambda: e.tinker.SamplingClient.create(e.sampler.holder, base_model=e.base).result(),
        "SamplingClient.from_sampler_handle": lambda: e.tinker.SamplingClient.from_sampler_handle(e.sampler.get_sampler_handle(), api_key=e.key),
        "SamplingClient.get_base_model": lambda: e.sampler.get_base_model(),
        "SamplingClient.get_sampler_handle": lambda: e.sampler.get_sampler_handle(),
        "SamplingClient.get_telemetry": lambda: e.sampler.get_telemetry(),
        "SamplingClient.get_tokenizer": lambda: e.sampler.get_tokenizer().encode("1 + 1"),
        "SamplingClient.on_queue_state_change": lambda: e.sampler.on_queue_state_change(t.QueueState("active") if hasattr(t, "QueueState") else "active", None),
        "SamplingClient.sample": lambda: e.sampler.sample(e.prompt(), 2, params).result(),
        "RestClient.assign_session_project": lambda: r.assign_session_project(e.session_id, "project").result(),
        "RestClient.copy_weights": lambda: r.copy_weights(e.state).result(),
        "RestClient.delete_checkpoint": lambda: r.delete_checkpoint(e.tc.model_id, "weights/" + e.tc.save_state("compat-del-id").result().path.rsplit("/", 1)[1]).result(),
        "RestClient.delete_checkpoint_from_tinker_path": lambda: r.delete_checkpoint_from_tinker_path(e.tc.save_state("compat-del").result().path).result(),
        "RestClient.export_session_trace": lambda: r.export_session_trace(e.session_id).result(),
        "RestClient.get_audit_log": lambda: r.get_audit_log().result(),
        "RestClient.get_billing_usage": lambda: r.get_billing_usage("2026-01-01", "2026-02-01").result(),
        "RestClient.get_current_checkpoint_storage_usage": lambda: r.get_current_checkpoint_storage_usage().result(),
        "RestClient.get_external_weights_urls": lambda: r.get_external_weights_urls(f"tinker://{e.tc.model_id}/external_weights/x").result(),
        "RestClient.get_sampler": lambda: r.get_sampler(e.sampler._sampling_session_id).result(),
        "RestClient.get_server_capabilities": lambda: r.get_server_capabilities().result(),
        "RestClient.get_session": lambda: r.get_session(e.session_id).result(),
        "RestClient.get_telemetry": lambda: r.get_telemetry(),
        "RestClient.get_training_run": lambda: r.get_training_run(e.tc.model_id).result(),
        "RestClient.get_training_run_by_tinker_path": lambda: r.get_training_run_by_tinker_path(e.state).result(),
        "RestClient.get_weights_info_by_tinker_path": lambda: r.get_weights_info_by_tinker_path(e.state).result(),
        "RestClient.list_checkpoints": lambda: r.list_checkpoints(e.tc.model_id).result(),
        "RestClient.list_sessions": lambda: r.list_sessions().result(),
        "RestClient.list_training_runs": lambda: r.list_training_runs().result(),
        "RestClient.list_user_checkpoints": lambda: r.list_user_checkpoints().result(),
        "RestClient.publish_checkpoint_from_tinker_path": lambda: r.publish_checkpoint_from_tinker_path(e.state).result(),
        "RestClient.search_sessions": lambda: r.search_sessions(t.SessionSearchRequest()).result(),
        "RestClient.set_checkpoint_ttl_from_tinker_path": lambda: r.set_checkpoint_ttl_from_tinker_path(e.state, 3600).result(),
        "RestClient.unpublish_checkpoint_from_tinker_path": lambda: r.unpublish_checkpoint_from_tinker_path(e.state).result(),
        "RestClient.whoami": lambda: r.whoami().result(),
    }


def sdk_methods() -> list[str]:
    import tinker

    names = []
    for client in CLIENTS:
        cls = getattr(tinker, client)
        names += [f"{client}.{n}" for n, v in inspect.getmembers(cls) if not n.startswith("_") and callable(v) and not n.endswith("_async")]
    return sorted(names)


def loss_names() -> list[str]:
    from tinker import types

    return [n for n in typing.get_args(types.LossFnType) if n != "custom"]  # custom: forward_backward_custom


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = re.sub(r"(session|sample|state|forward|optim)[-:][0-9a-f:-]+", r"\1-…", text)  # ids change per run
    return f"{type(exc).__name__}: {text[:160]}"


def _run(call: Callable[[], Any]) -> str | None:
    """None when the call worked, else why not (one line)."""
    # A daemon thread, not an executor: a call that never answers must not keep the process alive
    # at exit (executor threads are joined then), or `--check` in CI would hang instead of failing.
    outcome: concurrent.futures.Future = concurrent.futures.Future()

    def target() -> None:
        try:
            outcome.set_result(call())
        except BaseException as exc:  # noqa: BLE001 - reported as the call's reason
            outcome.set_exception(exc)

    threading.Thread(target=target, name="compat-call", daemon=True).start()
    try:
        outcome.result(timeout=CALL_TIMEOUT_S)
        return None
    except concurrent.futures.TimeoutError:
        return f"no answer within {CALL_TIMEOUT_S} s"
    except Exception as exc:
        return _one_line(exc)


def measure(url: str, key: str) -> dict[str, str | None]:
    """Every SDK method and loss name -> None (works) or the reason it does not."""
    env = Env(url, key)
    env.service_url, env.key = url, key
    calls = _calls(env)
    results: dict[str, str | None] = {}
    for name in sdk_methods():
        results[name] = _run(calls[name]) if name in calls else "not exercised: no call written for this SDK method yet"
    for loss in loss_names():
        data = env.datums(loss)
        results[f"loss_fn={loss}"] = _run(lambda: env.tc.forward_backward(data, loss).result())
    return results


def render(results: dict[str, str | None], sdk_version: str) -> str:
    rows = [
        "# tinker SDK compatibility of `tinkerx serve`",
        "",
        f"Generated by `python -m tinkerx.serve.compat` against tinker {sdk_version} and a `model=tiny` server:",
        "each public method of the SDK's clients and each built-in loss, called once. CI reruns it",
        "(`tests/test_server_compat.py`) and fails when a call marked *works* here stops working.",
        "",
        "| call | status | reason |",
        "|---|---|---|",
    ]
    for name, why in results.items():
        status = "works" if why is None else "not served"
        rows.append(f"| `{name}` | {status} | {(why or '').replace('|', '/')} |")
    return "\n".join(rows) + "\n"


def working_calls(doc: str) -> set[str]:
    return set(re.findall(r"^\| `([^`]+)` \| works \|", doc, flags=re.M))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DOC, help="where to write the matrix")
    parser.add_argument("--check", type=Path, help="compare with this committed matrix instead of writing")
    args = parser.parse_args(argv)
    # Before transformers loads: get_tokenizer must find the server's tokenizer without asking the hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TINKER_TELEMETRY", "0")

    import tinker

    from tinkerx.models.tiny import TinyModel
    from tinkerx.serve.runner import local_server

    key = "tml-compat-0000000000"
    with tempfile.TemporaryDirectory() as state, local_server(TinyModel(), Path(state)) as server:
        results = measure(server.url, key)
    text = render(results, tinker.__version__)
    if args.check is None:
        args.out.write_text(text)
        print(f"wrote {args.out}: {sum(v is None for v in results.values())} of {len(results)} calls work")
        return 0
    broken = sorted(working_calls(args.check.read_text()) - working_calls(text))
    for name in broken:
        print(f"broke: {name}: {results.get(name, 'no longer in the SDK')}", file=sys.stderr)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
