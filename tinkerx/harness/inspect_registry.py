"""What the ``inspect_ai`` entry point loads (pyproject.toml): the ``tinkerx`` model provider and the
``tinkerx/...`` tasks, so a plain ``inspect eval ... --model tinkerx/...`` finds them."""

from tinkerx.harness.inspect_provider import TinkerxModelAPI  # noqa: F401 - registers the provider
from tinkerx.harness.inspect_tasks import gsm8k  # noqa: F401 - registers tinkerx/gsm8k
