"""Checks of user-given settings shared by the env builder, the world model, planners and reward heads."""

from __future__ import annotations

from typing import Any

import numpy as np


def check_count(name: str, value: Any, minimum: int = 1, optional: bool = True) -> int | None:
    """``value`` as an int if it is an integer (not a bool) ``>= minimum``, or None when ``optional``.

    >>> check_count("chunk_size", np.int64(8))
    8
    >>> check_count("chunk_size", None) is None
    True

    Raises:
        ValueError: naming ``name``: not an integer (a bool, float, string, or None when not
            ``optional``), or below ``minimum``.
    """
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        default = " (or None for the default)" if optional else ""
        raise ValueError(f"{name} must be an integer >= {minimum}{default}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)
