"""Loading from the Hugging Face hub with failures as one-line ``DataError``s."""

from __future__ import annotations

from typing import Any

from tinkerx.errors import DataError


def load_hub_rows(repo: str, config: str | None, split: str, error: str) -> list[dict[str, Any]]:
    """Rows of ``repo``/``config``/``split`` through ``datasets`` (its cache works offline).

    ``error`` is the message to raise when the hub cannot be reached or refuses access; the
    library's own reason is appended in brackets.
    """
    import datasets

    datasets.disable_progress_bars()
    try:
        return list(datasets.load_dataset(repo, config, split=split))
    except OSError as e:
        # ConnectionError (offline, no DNS) and DatasetNotFoundError (gated or missing repo)
        # are both OSErrors.
        reason = " ".join(str(e).split())[:160]
        raise DataError(f"{error} [{type(e).__name__}: {reason}]") from None
