"""Train / validation / test splits by source, so no character crosses splits.

Rule (:func:`assign_splits`): every model of one ``source`` (franchise or
modeller folder) lands in the same split. Rejected models get no split. Rows
that already have a split keep it (unless ``reassign``), and new rows of a
source that already has a split join it. The remaining sources are ordered by
the SHA-256 of ``"<seed>:<source>"`` (so the order is random-looking but the
same on every machine) and each goes, whole, to the split whose model count is
furthest below its target ``fraction × models``; ties go to the earlier split
in train, validation, test. Splits whose fraction is 0 receive nothing.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

from pipeline.errors import PipelineError
from pipeline.index import SPLITS, ModelEntry

DEFAULT_FRACTIONS: tuple[float, float, float] = (0.9, 0.05, 0.05)
DEFAULT_SEED = 0


def parse_fractions(text: str) -> tuple[float, float, float]:
    """``"0.9,0.05,0.05"`` → (train, validation, test); they must sum to 1."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != len(SPLITS):
        raise PipelineError(f"fractions {text!r}: give three numbers (train,validation,test), "
                            "e.g. 0.9,0.05,0.05")
    try:
        values = tuple(float(part) for part in parts)
    except ValueError:
        raise PipelineError(f"fractions {text!r}: not all numbers") from None
    check_fractions(values)
    return values


def check_fractions(fractions: Sequence[float]) -> None:
    if len(fractions) != len(SPLITS):
        raise PipelineError(f"fractions {tuple(fractions)}: need one per split {SPLITS}")
    if any(not math.isfinite(f) or f < 0 for f in fractions):
        raise PipelineError(f"fractions {tuple(fractions)}: each must be a number >= 0")
    if abs(sum(fractions) - 1) > 1e-6:
        raise PipelineError(f"fractions {tuple(fractions)} sum to {sum(fractions):g}, not 1")


def source_order_key(seed: int, source: str) -> str:
    return hashlib.sha256(f"{seed}:{source}".encode()).hexdigest()


def assign_splits(entries: Sequence[ModelEntry],
                  fractions: Sequence[float] = DEFAULT_FRACTIONS,
                  seed: int = DEFAULT_SEED, reassign: bool = False) -> list[ModelEntry]:
    """``entries`` (same order) with ``split`` set by the module's rule.

    Raises :class:`PipelineError` when kept splits already put one source in
    two splits (fix the index or pass ``reassign``).
    """
    check_fractions(fractions)
    kept_split: dict[str, set[str]] = defaultdict(set)
    counts: Counter[str] = Counter()
    for entry in entries:
        if entry.status != "rejected" and entry.split and not reassign:
            kept_split[entry.source].add(entry.split)
            counts[entry.split] += 1
    mixed = {source: splits for source, splits in kept_split.items() if len(splits) > 1}
    if mixed:
        listed = "; ".join(f"{source!r} in {', '.join(sorted(splits))}"
                           for source, splits in sorted(mixed.items()))
        raise PipelineError(f"sources already span several splits: {listed}. Clear their "
                            "split cells or pass --reassign")

    open_groups: Counter[str] = Counter()
    for entry in entries:
        if entry.status != "rejected" and (reassign or not entry.split):
            if entry.source not in kept_split:
                open_groups[entry.source] += 1
            else:
                counts[next(iter(kept_split[entry.source]))] += 1
    total = sum(1 for entry in entries if entry.status != "rejected")
    targets = {split: fraction * total for split, fraction in zip(SPLITS, fractions, strict=True)}
    candidates = [split for split in SPLITS if targets[split] > 0]

    chosen = {source: next(iter(splits)) for source, splits in kept_split.items()}
    for source in sorted(open_groups, key=lambda s: source_order_key(seed, s)):
        split = max(candidates, key=lambda s: targets[s] - counts[s])  # first wins ties
        chosen[source] = split
        counts[split] += open_groups[source]

    result = []
    for entry in entries:
        if entry.status == "rejected":
            split = ""
        elif entry.split and not reassign:
            split = entry.split
        else:
            split = chosen[entry.source]
        result.append(entry if split == entry.split else replace(entry, split=split))
    return result


@dataclass(frozen=True)
class SplitCount:
    models: int
    sources: int


def split_counts(entries: Sequence[ModelEntry]) -> dict[str, SplitCount]:
    """Models and sources per split; key ``""`` counts the rows without a split."""
    models: Counter[str] = Counter()
    sources: dict[str, set[str]] = defaultdict(set)
    for entry in entries:
        models[entry.split] += 1
        sources[entry.split].add(entry.source)
    return {split: SplitCount(models[split], len(sources[split]))
            for split in (*SPLITS, "") if split or models[split]}
