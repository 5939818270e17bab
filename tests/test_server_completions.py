"""``/v1/completions`` as log-likelihood harnesses call it (echo, logprobs with top_logprobs, batched
string and token-id prompts, max_tokens 0 or 1) and the vLLM-style tokenizer routes lm-eval probes."""

from __future__ import annotations

import httpx
import pytest


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from tinkerx.models.tiny import TinyModel
    from tinkerx.serve.runner import local_server

    with local_server(TinyModel(), tmp_path_factory.mktemp("serve")) as srv:
        yield srv


def _post(server, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, timeout=60)


def test_echo_returns_the_prompt_tokens_logprobs(server, tiny_service):
    from tinker import types

    prompts = [[60, 61, 62, 63, 64], [70, 71, 72]]
    reply = _post(server, "/v1/completions", {"model": "tinkerx/tiny", "prompt": prompts, "echo": True, "logprobs": 2, "max_tokens": 0, "temperature": 0})
    assert reply.status_code == 200, reply.text
    choices = reply.json()["choices"]
    assert [c["index"] for c in choices] == [0, 1]
    sampler = tiny_service.create_sampling_client(base_model="tinkerx/tiny")
    for prompt, choice in zip(prompts, choices):
        lp = choice["logprobs"]
        assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == len(prompt)
        assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None  # the first token has no context
        expected = sampler.compute_logprobs(types.ModelInput.from_ints(prompt)).result()
        assert lp["token_logprobs"][1:] == pytest.approx(expected[1:], abs=1e-5)
        for chosen, top in zip(lp["token_logprobs"][1:], lp["top_logprobs"][1:]):
            assert len(top) <= 2 and max(top.values()) >= chosen  # the top-1 is at least the chosen token
        assert choice["text"] == sampler.get_tokenizer().decode(prompt)


def test_max_tokens_one_appends_the_sampled_token_and_is_greedy_is_readable(server):
    # lm-eval's request: temperature 0, max_tokens 1, echo, logprobs 1; it reads [ctxlen:-1].
    prompt = [60, 61, 62, 63]
    body = {"model": "tinkerx/tiny", "prompt": [prompt], "echo": True, "logprobs": 1, "max_tokens": 1, "temperature": 0}
    lp = _post(server, "/v1/completions", body).json()["choices"][0]["logprobs"]
    assert len(lp["token_logprobs"]) == len(prompt) + 1
    # Greedy decoding picked the top-1 token: its logprob is exactly the position's top value.
    assert lp["token_logprobs"][-1] == max(lp["top_logprobs"][-1].values())
    # Feeding the greedy token back as part of the prompt scores it as greedy, bit for bit.
    greedy_id = httpx.post(f"{server.url}/tokenize", json={"prompt": lp["tokens"][-1]}).json()["tokens"]
    again = _post(server, "/v1/completions", {**body, "prompt": [prompt + greedy_id[-1:]], "max_tokens": 0}).json()["choices"][0]["logprobs"]
    assert again["token_logprobs"][len(prompt)] == max(again["top_logprobs"][len(prompt)].values())


def test_string_prompts_batch_and_logprobs_without_echo(server):
    body = {"model": "tinkerx/tiny", "prompt": ["1+1=", "2+2="], "max_tokens": 3, "temperature": 0, "logprobs": 0}
    choices = _post(server, "/v1/completions", body).json()["choices"]
    assert len(choices) == 2
    for c in choices:
        assert len(c["logprobs"]["token_logprobs"]) == 3 and all(isinstance(v, float) for v in c["logprobs"]["token_logprobs"])
        assert all(t == {} for t in c["logprobs"]["top_logprobs"])  # logprobs 0: the chosen tokens only
    single = _post(server, "/v1/completions", {**body, "prompt": "1+1=", "logprobs": None}).json()["choices"][0]
    assert single["text"] == choices[0]["text"]  # the batched path samples what the single path does


def test_tokenizer_routes(server, tiny_service):
    tokenizer = tiny_service.create_sampling_client(base_model="tinkerx/tiny").get_tokenizer()
    info = httpx.get(f"{server.url}/tokenizer_info").json()
    assert info["eos_token"] == tokenizer.eos_token
    tokens = _post(server, "/tokenize", {"prompt": "12+34=", "add_special_tokens": False}).json()["tokens"]
    assert tokens == tokenizer.encode("12+34=", add_special_tokens=False)
    assert _post(server, "/detokenize", {"tokens": tokens}).json()["prompt"] == "12+34="


@pytest.mark.parametrize("body, message", [
    ({"prompt": []}, "prompt must be a string, a list of strings"),
    ({"prompt": [[]]}, "prompt 0 is empty"),
    ({"prompt": [[1, 10**9]]}, "outside the vocabulary"),
    ({"prompt": "hi", "logprobs": 99}, "logprobs must be an integer 0..20"),
    ({"prompt": "hi", "max_tokens": -1}, "max_tokens must be an integer >= 0"),
    ({"prompt": [[60] * 5000], "max_tokens": 0, "echo": True, "logprobs": 1}, "exceeds the model's context"),
    ({"prompt": "hi", "echo": True, "stream": True}, "stream is served for one prompt"),
])  # fmt: skip
def test_bad_requests_get_one_line(server, body, message):
    reply = _post(server, "/v1/completions", {"model": "tinkerx/tiny", **body})
    assert reply.status_code == 400
    error = reply.json()["error"]["message"]
    assert message in error and "\n" not in error
