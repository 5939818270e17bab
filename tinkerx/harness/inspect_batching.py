"""inspect's concurrent generate calls, decoded together.

inspect runs up to ``max_connections`` samples at once, each awaiting its own ``generate``. Sent one
by one, the local backend would decode them one after another; gathered here, the prompts that
arrive within a few milliseconds with the same sampling settings go out as one ``sample_prompts``
call -- one batched decode on the local backend, all requests in flight at once on Tinker. A
request's seed is its own (tinkerx.sampler), so a prompt gets the same reply in a batch or alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio

GATHER_S = 0.02  # how long the first request of a batch waits for the others: far below one decode step


@dataclass
class _Request:
    prompt: list[int]
    done: anyio.Event = field(default_factory=anyio.Event)
    response: Any = None
    error: BaseException | None = None


class SampleBatcher:
    def __init__(self, client: Any) -> None:
        self.client = client
        self._pending: dict[tuple[int, str], list[_Request]] = {}

    async def sample(self, prompt: list[int], num_samples: int, params: Any) -> Any:
        """The sampler's response for ``prompt`` (a ``SampleResponse``), decoded with the requests that came with it."""
        key = (num_samples, params.model_dump_json())
        request = _Request(prompt)
        batch = self._pending.setdefault(key, [])
        batch.append(request)
        if len(batch) == 1:  # the first one sends the batch once the others had time to join it
            with anyio.CancelScope(shield=True):  # even if its own sample is cancelled: the others wait on it
                await anyio.sleep(GATHER_S)
                await self._send(self._pending.pop(key), num_samples, params)
        await request.done.wait()
        if request.error is not None:
            raise request.error
        return request.response

    async def _send(self, batch: list[_Request], num_samples: int, params: Any) -> None:
        from tinkerx.sampler import sample_prompts

        def run() -> list[Any]:
            return [f.result() for f in sample_prompts(self.client, [r.prompt for r in batch], num_samples, params)]

        try:
            # The client blocks on its futures: off the event loop, so inspect's other work goes on.
            responses = await anyio.to_thread.run_sync(run)
        except Exception as e:  # every request of the batch hears about the failure
            for r in batch:
                r.error = e
        else:
            for r, response in zip(batch, responses):
                r.response = response
        for r in batch:
            r.done.set()
