"""Logged decisions + target tier shares -> per-intent thresholds on ``strong_win_rate``.

Follows RouteLLM's ``calibrate_threshold``: the threshold that sends a share ``s`` of
traffic to the strong model is the ``(1 - s)`` quantile of the logged win rates. Here the
cut sits midway between the two logged values that straddle it, so exactly
``round(n * s)`` of the calibration rows land at or above it (ties aside). With a
``primary_share`` the ``local_below`` cut is placed the same way so that
``strong_share + primary_share`` of traffic leaves the local tier. Per intent when the
intent has ``min_rows_per_intent`` rows, else the cut computed over all rows.

Rows pinned by privacy, forced to a tier, or routed by the heuristic (``reason`` starting
with "privacy", "forced" or "heuristic") are not governed by these thresholds and are
left out. Pure functions: no I/O."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from router_service.intents import INTENTS

Cut = tuple[float, float]  # (local_below, strong_above)
NOT_THRESHOLD_REASONS: tuple[str, ...] = ("privacy", "forced", "heuristic")


def calibration_rows(rows: Iterable[Mapping[str, Any]]) -> list[tuple[str, float]]:
    """Logged rows -> ``(intent, strong_win_rate)`` pairs the thresholds actually govern."""
    out: list[tuple[str, float]] = []
    for row in rows:
        p = row.get("strong_win_rate")
        intent = row.get("intent")
        reason = str(row.get("reason") or "")
        if p is None or intent not in INTENTS or reason.startswith(NOT_THRESHOLD_REASONS):
            continue
        p = float(p)
        if math.isfinite(p) and 0.0 <= p <= 1.0:
            out.append((str(intent), p))
    return out


def share_cut(values: list[float], share: float) -> float:
    """Sorted values + share in [0, 1] -> t with ``#(v >= t) == round(len * share)``
    (up to ties). Empty input -> the RouteLLM convention on a uniform prior, ``1 - share``."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be within [0, 1], got {share}")
    n = len(values)
    if n == 0:
        return 1.0 - share
    k = round(n * share)
    if k <= 0:
        return 1.0  # the highest cut a policy allows: only p == 1.0 would go strong
    if k >= n:
        return 0.0
    lo, hi = values[n - k - 1], values[n - k]
    return (lo + hi) / 2.0 if lo < hi else hi


def calibrate_thresholds(
    rows: Iterable[Mapping[str, Any]],
    strong_share: float,
    primary_share: float | None = None,
    per_intent: bool = True,
    min_rows_per_intent: int = 50,
    *,
    current: Mapping[str, Cut] | None = None,
) -> dict[str, Cut]:
    """Rows with ``intent`` and ``strong_win_rate`` -> ``{intent: (local_below, strong_above)}``
    for every intent.

    ``strong_share``: target share of requests routed strong. ``primary_share``: target
    share routed primary; when None, ``local_below`` is kept from ``current`` (clamped to
    ``<= strong_above``), or 0.0 (no local tier by threshold) when there is no current."""
    if not 0.0 <= strong_share <= 1.0:
        raise ValueError(f"strong_share must be within [0, 1], got {strong_share}")
    if primary_share is not None and not 0.0 <= primary_share <= 1.0 - strong_share + 1e-12:
        raise ValueError(
            f"primary_share must be within [0, 1 - strong_share], got {primary_share} "
            f"with strong_share {strong_share}"
        )
    leave = None if primary_share is None else min(1.0, strong_share + primary_share)
    pairs = calibration_rows(rows)
    all_values = sorted(p for _, p in pairs)
    by_intent: dict[str, list[float]] = {}
    for intent, p in pairs:
        by_intent.setdefault(intent, []).append(p)

    global_strong = share_cut(all_values, strong_share)
    global_local = None if leave is None else min(share_cut(all_values, leave), global_strong)
    out: dict[str, Cut] = {}
    for intent in INTENTS:
        values = sorted(by_intent.get(intent, []))
        if per_intent and len(values) >= max(1, min_rows_per_intent):
            strong_above = share_cut(values, strong_share)
            local_below = None if leave is None else min(share_cut(values, leave), strong_above)
        else:
            strong_above, local_below = global_strong, global_local
        if local_below is None:
            kept = current.get(intent) if current else None
            local_below = min(kept[0], strong_above) if kept else 0.0
        out[intent] = (local_below, strong_above)
    return out


def tier_for(p: float, cut: Cut) -> str:
    """The threshold rule of ``routing.choose_tier`` for one win rate."""
    local_below, strong_above = cut
    if p < local_below:
        return "local"
    if p >= strong_above:
        return "strong"
    return "primary"


def tier_shares(
    pairs: Iterable[tuple[str, float]], cuts: Mapping[str, Cut], default_tier: str = "primary"
) -> dict[str, float]:
    """(intent, win rate) pairs + thresholds -> share of pairs per tier (sums to 1)."""
    counts = {"local": 0, "primary": 0, "strong": 0}
    n = 0
    for intent, p in pairs:
        cut = cuts.get(intent)
        counts[tier_for(p, cut) if cut is not None else default_tier] += 1
        n += 1
    return {tier: (c / n if n else 0.0) for tier, c in counts.items()}


# -- the policy file -------------------------------------------------------------------


def pretty_cut(value: float, values: list[float], slack: int = 0) -> float:
    """A short decimal for ``value`` that splits the sorted ``values`` as it does, give or
    take ``slack`` rows (a cut that must split 10k dense scores exactly needs 9 digits)."""
    import bisect

    target = bisect.bisect_left(values, value)
    for digits in (2, 3, 4, 6, 9):
        rounded = min(1.0, max(0.0, round(value, digits)))
        if abs(bisect.bisect_left(values, rounded) - target) <= slack:
            return rounded
    return value


def intents_yaml(cuts: Mapping[str, Cut], indent: str = "  ", comment: str = "") -> str:
    """Thresholds -> the ``intents:`` block (one flow mapping per intent), newline-ended."""
    head = f"{indent}intents:" + (f"  # {comment}" if comment else "")
    lines = [head]
    for intent in INTENTS:
        if intent in cuts:
            lo, hi = cuts[intent]
            lines.append(f"{indent}  {intent}: {{local_below: {lo!r}, strong_above: {hi!r}}}")
    return "\n".join(lines) + "\n"


def _indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _is_content(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def replace_routing_intents(text: str, cuts: Mapping[str, Cut], comment: str = "") -> str:
    """Policy YAML text -> the same text with ``routing.intents`` replaced by ``cuts``.

    Everything else (other sections, comments) is kept byte for byte. A missing
    ``routing:`` section or ``intents:`` key is appended. Block-style YAML only: the
    caller re-parses the result and falls back to a full re-dump if this did not work."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    start = next(
        (i for i, ln in enumerate(lines) if ln.split("#", 1)[0].rstrip() == "routing:"), None
    )
    if start is None:
        return "".join(lines) + "\nrouting:\n" + intents_yaml(cuts, "  ", comment)
    end = next(
        (
            j
            for j in range(start + 1, len(lines))
            if _is_content(lines[j]) and _indent_of(lines[j]) == 0
        ),
        len(lines),
    )
    children = [j for j in range(start + 1, end) if _is_content(lines[j])]
    child_indent = min((_indent_of(lines[j]) for j in children), default=2) or 2
    pad = " " * child_indent
    key = next(
        (j for j in children if _indent_of(lines[j]) == child_indent
         and lines[j].strip().split("#", 1)[0].rstrip() == "intents:"),
        None,
    )  # fmt: skip
    block = intents_yaml(cuts, pad, comment)
    if key is None:
        last = children[-1] + 1 if children else start + 1
        return "".join([*lines[:last], block, *lines[last:]])
    stop = next(
        (
            j
            for j in range(key + 1, end)
            if _is_content(lines[j]) and _indent_of(lines[j]) <= child_indent
        ),
        end,
    )
    while stop > key + 1 and not _is_content(lines[stop - 1]):
        stop -= 1  # keep blank lines / comments that precede the next key
    return "".join([*lines[:key], block, *lines[stop:]])
