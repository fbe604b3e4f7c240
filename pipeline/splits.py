"""Train / validation / test splits by source, so no character crosses splits.

Rule (:func:`assign_splits`): every model of one *group* lands in the same
split. A group is a source (franchise or modeller folder; spellings that
differ only in case, spaces or Unicode form are one source, see
:func:`pipeline.index.source_key`), joined with every other source that holds
a byte-identical file (same sha256): a re-upload of a model in another folder
never ends up in another split. Rejected models get no split and join nothing.
Rows that already have a split keep it (unless ``reassign``), and new rows of
a group that already has a split join it. The remaining groups are ordered by
the SHA-256 of ``"<seed>:<group>"`` (the group named by its smallest source
key; random-looking but the same on every machine) and each goes, whole, to
the split whose model count is furthest below its target ``fraction ×
models``; ties go to the earlier split in train, validation, test. Splits
whose fraction is 0 receive nothing. Before all this, ``--assign`` patterns
may put chosen sources in chosen splits, and ``--every-split`` gives each split
with a share one source first, for libraries of few sources.
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

from pipeline.errors import PipelineError
from pipeline.index import SPLITS, ModelEntry, source_key

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


def split_groups(entries: Sequence[ModelEntry]) -> dict[str, str]:
    """``{source key: group name}`` over the rows that are not rejected.

    Sources sharing a sha256 are one group (transitively); a group is named
    by its smallest source key.
    """
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    holder: dict[str, str] = {}  # sha256 -> a source key holding that file
    for entry in entries:
        if entry.status == "rejected":
            continue
        key = source_key(entry.source)
        parent.setdefault(key, key)
        if entry.sha256:
            other = holder.setdefault(entry.sha256, key)
            first, second = sorted((find(key), find(other)))
            parent[second] = first
    return {key: find(key) for key in parent}


def parse_assignments(items: Sequence[str]) -> list[tuple[str, str]]:
    """``["validation=mokou,neru*", "test=haku"]`` -> [(split, pattern), ...]."""
    pairs = []
    for item in items:
        split, equals, patterns = item.partition("=")
        split = split.strip()
        if not equals or split not in SPLITS or not patterns.strip():
            raise PipelineError(f"--assign {item!r}: write SPLIT=PATTERN[,PATTERN...] with "
                                f"SPLIT one of {', '.join(SPLITS)}, e.g. "
                                "--assign validation=mokou,neru")
        pairs += [(split, p.strip()) for p in patterns.split(",") if p.strip()]
    return pairs


def _assigned(live: Sequence[ModelEntry], group, assignments) -> dict[str, str]:
    """{group: split} the patterns ask for: each matches sources or model_ids (globs)."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for split, pattern in assignments:
        hits = [e for e in live if fnmatch.fnmatchcase(source_key(e.source), source_key(pattern))
                or fnmatch.fnmatchcase(e.model_id, pattern)]
        if not hits:
            raise PipelineError(f"--assign {split}={pattern}: no source or model_id matches it")
        for entry in hits:
            wanted[group(entry)].add(split)
    clash = {g: splits for g, splits in wanted.items() if len(splits) > 1}
    if clash:
        raise PipelineError(f"--assign puts one source in several splits: "
                            f"{_describe(clash, live, group)}")
    return {g: next(iter(splits)) for g, splits in wanted.items()}


def assign_splits(entries: Sequence[ModelEntry],
                  fractions: Sequence[float] = DEFAULT_FRACTIONS,
                  seed: int = DEFAULT_SEED, reassign: bool = False,
                  assignments: Sequence[tuple[str, str]] = (),
                  every_split: bool = False) -> list[ModelEntry]:
    """``entries`` (same order) with ``split`` set by the module's rule.

    ``assignments``: (split, pattern) pairs put the sources (or the models'
    sources) they match in that split first, whatever the index said.
    ``every_split``: before the fractions, each split with a share and no model
    yet takes one source (the smallest, in the seeded order), so that a library
    of few sources still gets validation and test models.
    Raises :class:`PipelineError` when kept splits already put one group in
    two splits (fix the index or pass ``reassign``).
    """
    check_fractions(fractions)
    live = [entry for entry in entries if entry.status != "rejected"]
    groups = split_groups(live)

    def group(entry: ModelEntry) -> str:
        return groups[source_key(entry.source)]

    forced = _assigned(live, group, assignments)

    kept_split: dict[str, set[str]] = defaultdict(set)
    if not reassign:
        for entry in live:
            if entry.split and group(entry) not in forced:
                kept_split[group(entry)].add(entry.split)
    mixed = {name: splits for name, splits in kept_split.items() if len(splits) > 1}
    if mixed:
        raise PipelineError(f"sources already span several splits: "
                            f"{_describe(mixed, live, group)}. Clear their split cells or "
                            "pass --reassign")

    chosen = {name: next(iter(splits)) for name, splits in kept_split.items()}
    chosen.update(forced)
    counts: Counter[str] = Counter()
    open_groups: Counter[str] = Counter()
    for entry in live:
        if group(entry) in chosen:
            counts[chosen[group(entry)]] += 1
        else:
            open_groups[group(entry)] += 1
    targets = {split: fraction * len(live)
               for split, fraction in zip(SPLITS, fractions, strict=True)}
    candidates = [split for split in SPLITS if targets[split] > 0]
    waiting = sorted(open_groups, key=lambda g: source_order_key(seed, g))
    if every_split:  # train first, then the smallest shares, each the smallest source left
        for split in sorted(candidates, key=lambda s: (s != "train", targets[s])):
            if counts[split] == 0 and waiting:
                name = min(waiting, key=lambda g: open_groups[g])
                waiting.remove(name)
                chosen[name] = split
                counts[split] += open_groups[name]
    for name in waiting:
        split = max(candidates, key=lambda s: targets[s] - counts[s])  # first wins ties
        chosen[name] = split
        counts[split] += open_groups[name]

    result = []
    for entry in entries:
        split = "" if entry.status == "rejected" else chosen[group(entry)]
        result.append(entry if split == entry.split else replace(entry, split=split))
    return result


def _describe(mixed: dict[str, set[str]], live: Sequence[ModelEntry], group) -> str:
    described = []
    for name, splits in sorted(mixed.items()):
        sources = sorted({e.source for e in live if group(e) == name}, key=source_key)
        shared = " (they share a model file)" if len({source_key(s) for s in sources}) > 1 \
            else ""
        described.append(f"{', '.join(map(repr, sources))}{shared} in "
                         f"{', '.join(sorted(splits))}")
    return "; ".join(described)


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
        sources[entry.split].add(source_key(entry.source))
    return {split: SplitCount(models[split], len(sources[split]))
            for split in (*SPLITS, "") if split or models[split]}
