"""Progress reporting: a tqdm bar on a terminal, nothing otherwise (or when --quiet)."""

from __future__ import annotations

import sys

from tqdm import tqdm


def progress_bar(total: int | None, desc: str, enabled: bool = True, initial: int = 0, unit: str = "frame") -> tqdm:
    """A bar showing done/total, rate and ETA; disabled when not enabled or stderr is not a terminal."""
    show = enabled and sys.stderr.isatty()
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        disable=not show,
        dynamic_ncols=True,
        smoothing=0.1,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} {unit}s [{elapsed}<{remaining}, {rate_fmt}]",
    )
