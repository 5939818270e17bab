"""The local backend's prefix cache: a prompt that extends an earlier call's finished sequence (the next
turn of an episode) prefills only its new tokens, and gets what a whole prefill gives it.

Equality is checked against the same sampler with the cache off (``backend.prefix_cache_tokens=0``):
the same tokens, and logprobs within LOGPROB_TOL (float32; the kept keys and values were computed
in other forwards, with other matmul shapes, so the last bits may differ).
"""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from tinker import types

from tinkerx.backends.local import LocalBackend
from tests.helpers.compose import compose
from tinkerx.build import MULTI_TURN_PREFIX_CACHE_TOKENS, _prefix_cache
from tinkerx.backends.local.prefix_cache import MIN_KEPT_TOKENS, PrefixCache
from tinkerx.envs import EpisodeLimits, EpisodeRunner
from tinkerx.envs.guess_number import GuessNumber
from tinkerx.envs.one_turn import POLICY
from tinkerx.models.tiny import TinyModel
from tinkerx.paths import CONFIG_DIR

LOGPROB_TOL = 1e-4
GREEDY = types.SamplingParams(max_tokens=10, temperature=0.0)


def open_service(tmp_path_factory, cache_tokens: int, **kwargs):
    backend = LocalBackend(device="cpu", prefix_cache_tokens=cache_tokens, **kwargs)
    return backend, backend.open([TinyModel()], tmp_path_factory.mktemp("prefix_cache"), seed=0)


@pytest.fixture()
def services(tmp_path_factory):
    """(cached, plain): two services over the same tiny model, the cache on in the first only."""
    on, cached = open_service(tmp_path_factory, 4096)
    off, plain = open_service(tmp_path_factory, 0)
    yield cached, plain
    on.close()
    off.close()


def policy(service):
    """A LoRA training client (as a method's policy) and a sampling client of its weights."""
    trainer = service.create_lora_training_client(TinyModel().base_model, rank=4).result()
    return trainer, trainer.save_weights_and_get_sampling_client()


def sample(client, prompts, num_samples=1, params=GREEDY):
    futures = client.sample_many([types.ModelInput.from_ints(p) for p in prompts], num_samples, params)
    return [[(list(s.tokens), list(s.logprobs)) for s in f.result().sequences] for f in futures]


def assert_same(cached, plain):
    """Same tokens everywhere; logprobs within LOGPROB_TOL."""
    assert [[t for t, _ in rows] for rows in cached] == [[t for t, _ in rows] for rows in plain]
    gap = max(abs(a - b) for rc, rp in zip(cached, plain) for (_, la), (_, lb) in zip(rc, rp) for a, b in zip(la, lb))
    assert gap <= LOGPROB_TOL, f"logprobs differ by {gap}"


def next_turn(prompts, results, observation):
    """Each prompt + its (first) sample's tokens + an observation's tokens: an episode's next prompt."""
    return [p + rows[0][0] + observation(i) for i, (p, rows) in enumerate(zip(prompts, results))]


def test_greedy_episodes_sample_the_same_with_the_cache_and_prefill_only_new_tokens(services):
    """guess_number episodes (4 turns each, the tiny model never guesses right) through the episode
    runner: the same turns, token for token, with the cache as without; from the second turn on
    every prompt hits, and the tokens it did not prefill are counted."""
    runs, engines = [], []
    spec = GuessNumber(train_size=4, test_size=1, seed=0)
    for service in services:
        trainer, sampler = policy(service)
        engines.append(trainer.engine)
        runner = EpisodeRunner(trainer.get_tokenizer(), GREEDY, EpisodeLimits(max_turns=4))
        groups = runner.launch([spec.group(task) for task in spec.train], 1, {POLICY: sampler}).collect()
        runs.append([e for g in groups for e in g])
    cached, plain = runs
    turns = [len(e.turns) for e in plain]
    assert min(turns) >= 3, f"episodes too short to test turns after the first: {turns}"
    assert [[t.tokens_T for t in e.turns] for e in cached] == [[t.tokens_T for t in e.turns] for e in plain]
    gap = max(abs(a - b) for ec, ep in zip(cached, plain) for tc, tp in zip(ec.turns, ep.turns) for a, b in zip(tc.logprobs_T, tp.logprobs_T))
    assert gap <= LOGPROB_TOL
    counters = engines[0].prefix_cache.counters
    later_turns = sum(t - 1 for t in turns)
    assert counters["hits"] == later_turns
    # Each hit reused at least the previous turn's whole prompt (its reply's tokens too, but for the last one).
    reused_at_least = sum(len(e.turns[i - 1].prompt_T) for e in cached for i in range(1, len(e.turns)))
    assert counters["tokens_saved"] >= reused_at_least
    assert engines[1].prefix_cache.counters["hits"] == 0 and len(engines[1].prefix_cache) == 0


@pytest.mark.parametrize("max_rows", [None, 3], ids=["one-batch", "rows-joining"])
def test_rows_with_and_without_hits_and_different_kept_lengths_share_a_batch(tmp_path_factory, max_rows):
    """One call mixing prompts that extend long and short kept sequences with prompts that extend none,
    several samples each; with a row limit, prompts with hits join a running batch (continuous
    batching). Each row gets what it gets with the cache off."""
    outputs, caches = [], []
    for tokens in (4096, 0):
        backend, service = open_service(tmp_path_factory, tokens, max_batch_rows=max_rows)
        trainer, sampler = policy(service)
        first = [[5 + i] * (12 + 9 * i) + [40, 41, 42] for i in range(3)]  # kept lengths differ row to row
        turn1 = sample(sampler, first, params=types.SamplingParams(max_tokens=4 + 3 * 2, temperature=0.0))
        extended = next_turn(first, turn1, lambda i: [60 + i, 61, 62])
        fresh = [[90, 91, 92, 93, 94, 95, 96, 97, 98, 99], [70] * 30]  # no kept sequence starts them
        mixed = [extended[0], fresh[0], extended[2], fresh[1], extended[1]]
        params = types.SamplingParams(max_tokens=8, temperature=0.0)
        outputs.append(sample(sampler, mixed, num_samples=2, params=params))
        caches.append(trainer.engine.prefix_cache)
        backend.close()
    assert_same(*outputs)
    assert caches[0].counters["hits"] == 3 and caches[0].counters["lookups"] == 8


def test_seeded_sampling_draws_the_same_tokens_with_the_cache(services):
    """At temperature 1 with a seed the draws are the same; the distributions they come from agree
    to LOGPROB_TOL, so the tokens drawn do too."""
    outputs = []
    params = types.SamplingParams(max_tokens=12, temperature=1.0, seed=7)
    for service in services:
        _, sampler = policy(service)
        prompts = [[3, 4, 5, 6, 7, 8, 9, 10, 11 + i] for i in range(4)]
        for turn in range(3):
            results = sample(sampler, prompts, num_samples=1, params=params)
            prompts = next_turn(prompts, results, lambda i: [30 + turn, 31, 32 + i])
        outputs.append(results)
    assert_same(*outputs)


def test_an_optimizer_step_empties_the_cache_and_later_prompts_prefill_whole(services):
    """Keys and values from the weights before an optimizer step are never used after it: the next
    turn after a step samples what the cache-off sampler samples on the new weights, and the step
    moved the weights enough that reusing the old keys and values would show (checked below)."""
    cached_service, plain_service = services
    turn2, hits = [], []
    prompts = [[5, 6, 7, 8, 9, 10, 11, 12, 13 + i] for i in range(3)]
    for service in (cached_service, plain_service):
        trainer, sampler = policy(service)
        turn1 = sample(sampler, prompts)
        extended = next_turn(prompts, turn1, lambda i: [50, 51, 52 + i])
        before_step = sample(sampler, extended)  # the old weights' turn 2 (hits with the cache)
        datum = types.Datum(model_input=types.ModelInput.from_ints(extended[0][:-1]),
                            loss_fn_inputs={"target_tokens": types.TensorData.from_torch(torch.tensor(extended[0][1:])),
                                            "weights": types.TensorData.from_torch(torch.ones(len(extended[0]) - 1))})  # fmt: skip
        trainer.forward_backward([datum], "cross_entropy").result()
        trainer.optim_step(types.AdamParams(learning_rate=5e-2)).result()
        saved = trainer.engine.prefix_cache.counters["hits"]
        after = trainer.save_weights_and_get_sampling_client()
        turn2.append((before_step, sample(after, extended)))
        hits.append(trainer.engine.prefix_cache.counters["hits"] - saved)
    (cached_before, cached_after), (plain_before, plain_after) = turn2
    assert hits[0] == 0, "a prompt reused keys and values computed with the weights before the step"
    assert_same(cached_after, plain_after)
    # The step changed the turn-2 logprobs far beyond the tolerance: stale keys and values would fail above.
    moved = max(abs(a - b) for rb, ra in zip(plain_before, plain_after) for (_, lb), (_, la) in zip(rb, ra) for a, b in zip(lb, la))
    assert moved > 100 * LOGPROB_TOL, f"the step barely moved the weights ({moved}); the test could not see stale reuse"


def test_a_sampling_client_of_older_weights_does_not_read_newer_keys(services):
    """Two sampling clients of one engine at different versions take turns: the cache serves one
    version at a time, so each client's turns equal the cache-off sampler's."""
    cached_service, _ = services
    trainer, old = policy(cached_service)
    prompts = [[5, 6, 7, 8, 9, 10, 11, 12, 13]]
    turn1 = sample(old, prompts)
    datum = types.Datum(model_input=types.ModelInput.from_ints(prompts[0][:-1]),
                        loss_fn_inputs={"target_tokens": types.TensorData.from_torch(torch.tensor(prompts[0][1:])),
                                        "weights": types.TensorData.from_torch(torch.ones(len(prompts[0]) - 1))})  # fmt: skip
    trainer.forward_backward([datum], "cross_entropy").result()
    trainer.optim_step(types.AdamParams(learning_rate=5e-2)).result()
    new = trainer.save_weights_and_get_sampling_client()
    extended = next_turn(prompts, turn1, lambda i: [50, 51, 52])
    sample(new, extended)  # keeps the new weights' sequence
    cache = trainer.engine.prefix_cache
    hits = cache.counters["hits"]
    sample(old, extended)  # the old weights again: the new weights' sequences are dropped, not read
    assert cache.counters["hits"] == hits


def test_one_turn_prompts_never_hit(services):
    """The same prompts sampled again (a GRPO step's second batch, an evaluation) extend no finished
    sequence: nothing is reused, so one-turn numerics are those without the cache."""
    cached_service, _ = services
    trainer, sampler = policy(cached_service)
    prompts = [[5, 6, 7, 8, 9, 10, 11, 12, 13 + i] for i in range(3)]
    sample(sampler, prompts, num_samples=2)
    sample(sampler, prompts, num_samples=2)
    cache = trainer.engine.prefix_cache
    assert cache.counters["lookups"] == 6 and cache.counters["hits"] == 0 and len(cache) > 0


def test_the_cache_holds_at_most_its_bound_and_evicts_the_least_recently_used():
    cache = PrefixCache(max_tokens=40)
    kv = lambda n: ([torch.zeros(1, n, 2)], [torch.zeros(1, n, 2)])  # noqa: E731
    a, b, c = list(range(10)), list(range(100, 115)), list(range(200, 220))
    for seq in (a, b):
        cache.put(seq, *kv(len(seq)))
    assert cache.lookup(a + [7]) is not None  # a is now the most recently used
    cache.put(c, *kv(len(c)))  # 45 tokens > 40: the least recently used (b) leaves
    assert cache.cached_tokens == 30 and cache.counters["evicted"] == 1
    assert cache.lookup(b + [1]) is None and cache.lookup(c + [1]).tokens == c and cache.lookup(a + [1]).tokens == a
    cache.put(list(range(41)), *kv(41))  # longer than the whole bound: not kept, nothing evicted for it
    assert cache.cached_tokens == 30 and len(cache) == 2
    cache.put(list(range(MIN_KEPT_TOKENS - 1)), *kv(MIN_KEPT_TOKENS - 1))  # too short to be worth keeping
    assert len(cache) == 2
    # The longest kept prefix wins; a prompt equal to a kept sequence has nothing of its own to run: a miss.
    cache.put(a + [50, 51], *kv(12))
    assert cache.lookup(a + [50, 51, 52]).length == 12 and cache.lookup(a + [50]).length == 10 and cache.lookup(a) is None
    cache.bind("v1")
    assert len(cache) == 0 and cache.cached_tokens == 0  # other weights: everything dropped


def test_sampling_under_a_small_bound_keeps_the_cache_within_it(tmp_path_factory):
    backend, service = open_service(tmp_path_factory, 60)
    trainer, sampler = policy(service)
    prompts = [[5 + i] * 20 for i in range(6)]
    for turn in range(2):
        results = sample(sampler, prompts)
        prompts = next_turn(prompts, results, lambda i: [70, 71])
    cache = trainer.engine.prefix_cache
    assert 0 < cache.cached_tokens <= 60 and cache.counters["evicted"] > 0
    backend.close()


def test_the_service_reports_hits_and_tokens_saved_per_read(services):
    cached_service, plain_service = services
    _, sampler = policy(cached_service)
    prompts = [[5, 6, 7, 8, 9, 10, 11, 12, 13]]
    turn1 = sample(sampler, prompts)
    cached_service.prefix_cache_metrics()  # what came before
    sample(sampler, next_turn(prompts, turn1, lambda i: [50, 51]))
    kept = len(prompts[0]) + len(turn1[0][0][0]) - 1  # the last sampled token had not run yet
    assert cached_service.prefix_cache_metrics() == {"sample/prefix_cache_hits": 1, "sample/prefix_cache_tokens_saved": kept}
    assert cached_service.prefix_cache_metrics() == {"sample/prefix_cache_hits": 0, "sample/prefix_cache_tokens_saved": 0}
    assert plain_service.prefix_cache_metrics() == {}


def test_the_bound_comes_from_the_backend_config_and_a_bad_one_is_named():
    assert OmegaConf.load(CONFIG_DIR / "backend" / "local.yaml").prefix_cache_tokens == "auto"
    assert LocalBackend(prefix_cache_tokens="auto").prefix_cache_tokens == 0  # outside a run: off
    for bad in (-1, 1.5, True, "many"):
        with pytest.raises(ValueError, match=r"backend\.prefix_cache_tokens must be auto or an integer >= 0"):
            LocalBackend(prefix_cache_tokens=bad)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["method=grpo", "dataset=gsm8k", "model=qwen3-8b"], 0),  # one-turn GRPO: nothing would read a kept sequence
        (["method=grpo", "env=guess_number"], MULTI_TURN_PREFIX_CACHE_TOKENS),
        (["method=grpo", "env=guess_number", "env.max_turns=1"], 0),
        (["experiment=debate_tiny_mmlu_rl"], MULTI_TURN_PREFIX_CACHE_TOKENS),
        (["experiment=debate_tiny_mmlu"], 0),  # rejection sampling re-renders each turn's transcript
        (["method=grpo", "env=guess_number", "backend.prefix_cache_tokens=1000"], None),  # an explicit value is kept
    ],
)
def test_auto_keeps_sequences_only_where_later_turns_extend_earlier_ones(overrides, expected):
    cfg = compose(overrides)  # tests.helpers.compose
    assert _prefix_cache(cfg) == ({} if expected is None else {"prefix_cache_tokens": expected})


def test_a_multi_turn_env_run_records_the_prefix_cache_counters_in_its_step_metrics(tmp_path):
    """``method=grpo env=guess_number`` on tiny with the backend's config: second guesses reuse the
    first turn's keys and values, and each step's metrics say how many prompt tokens were not prefilled."""
    from tests.helpers.runs import metrics_rows, run_in_process

    guess = ["method=grpo", "env=guess_number", "env.high=9", "env.max_turns=2", "env.test_size=2", "env.train_size=10", "~reward",
             "training.batch_size=2", "method.group_size=2", "sampling.max_tokens=2", "method.samples_per_step=1",
             "training.eval_every=0", "method.evaluate_baseline=false", "training.max_steps=1", "backend.num_threads=1"]  # fmt: skip
    run_in_process(guess, tmp_path / "run")
    step = metrics_rows(tmp_path / "run")[-1]
    assert step["step"] == 1 and step["episodes/turns"] > 1  # some episodes had a second turn
    assert step["sample/prefix_cache_hits"] >= 1 and step["sample/prefix_cache_tokens_saved"] > 0


def test_a_rollout_worker_keeps_its_own_cache_and_samples_the_same(tmp_path_factory):
    """With ``backend.rollout_device`` sampling runs on a copy of the model: that copy's engine keeps
    the sequences, the next turn hits there, and the tokens equal the cache-off sampler's."""
    outputs, engines = [], []
    for tokens in (4096, 0):
        backend, service = open_service(tmp_path_factory, tokens, rollout_device="cpu")
        trainer, sampler = policy(service)
        prompts = [[5, 6, 7, 8, 9, 10, 11, 12, 13 + i] for i in range(3)]
        turn1 = sample(sampler, prompts)
        outputs.append(sample(sampler, next_turn(prompts, turn1, lambda i: [50, 51, 52 + i])))
        engines.append((trainer.engine, sampler.engine))
        backend.close()
    assert_same(*outputs)
    (trained, rollout), _ = engines
    assert rollout is not trained and rollout.prefix_cache.counters["hits"] == 3 and trained.prefix_cache.counters["lookups"] == 0


def test_saving_a_state_empties_the_cache(services):
    """A resumed run starts with an empty cache; the run that goes on past the saved state must too,
    or its next turns would hit where the resumed run's prefill whole (logprobs equal only to LOGPROB_TOL)."""
    cached_service, _ = services
    trainer, sampler = policy(cached_service)
    prompts = [[5, 6, 7, 8, 9, 10, 11, 12, 13]]
    turn1 = sample(sampler, prompts)
    assert len(trainer.engine.prefix_cache) == 1
    trainer.save_state("resume-point").result()
    sample(sampler, next_turn(prompts, turn1, lambda i: [50, 51]))
    assert trainer.engine.prefix_cache.counters["hits"] == 0
