"""The variants of ``cpi demo`` (what each run trains on) and the record of a demo's runs;
shared by ``demo.py`` (which runs them) and ``report.py`` (which reports them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .world import pool_roles

__all__ = [
    "ABLATIONS",
    "ALIASES",
    "ALL_VARIANTS",
    "DOSE_CURATION",
    "DOSE_PERCENTS",
    "DOSE_RESPONSE",
    "VARIANTS",
    "DemoRun",
    "Variant",
]


@dataclass(frozen=True)
class Variant:
    """One finetuning run per seed: extra ``cpi train`` arguments and the data it trains on."""

    args: tuple[str, ...] = ()
    data: str = "ift"  # a role of World.write(): "ift" (the mixture), "ift_all_c" (only C) or
    # "ift_pool_<p>" (a larger pool for a curation to cut down)
    drop: float | None = None  # the curation's drop fraction (--context_critical_drop)
    curation: str | None = None  # the trainer curation (a name in CURATIONS) that drops
    about: str = ""

    @property
    def kinds(self) -> str:
        """The World.write() role of the kinds file of this variant's data."""
        return "kinds" if self.data == "ift" else f"{self.data}_kinds"

    @property
    def pool_drop(self) -> float | None:
        """The drop fraction whose pool this variant trains on (World.write(drops=...))."""
        return self.drop if self.drop and self.data == pool_roles(self.drop)[0] else None


# The dose-response drops from ALL examples (context_critical_all), not only from those with
# a context (context_critical, the paper's): the mixture's S points are as non-context-critical
# as its C+S points, and context_critical never removes them, so the S share would grow with
# the dose. Each dose cuts its own pool (World.pool_rows) down to the mixture's size, so every
# run sees each example equally often: repetition alone makes a fall (docs/demo.md).
DOSE_CURATION = "context_critical_all"
DOSE_PERCENTS = (25, 50, 75)


def _curated(percent: int, curation: str = DOSE_CURATION, pool: bool = True) -> Variant:
    drop = percent / 100
    what = (
        "of all examples (C+S and S points alike)"
        if curation == "context_critical_all"
        else "of the examples with a context (S points kept)"
    )
    where = (
        f"a pool 1/(1 - {drop:g}) times the mixture, so as many examples are left as the "
        "mixture has"
        if pool
        else "the mixture itself (fewer examples left, each seen more often)"
    )
    return Variant(
        ("--curation", curation, "--context_critical_drop", f"{drop:g}"),
        data=pool_roles(drop)[0] if pool else "ift",
        drop=drop,
        curation=curation,
        about=f"{curation}: the {percent}% {what} with the lowest base-model loss without a "
        f"context dropped, from {where}",
    )


VARIANTS: dict[str, Variant] = {
    "standard": Variant(about="the mixture; only W_q and W_k train (the paper's QK finetuning)"),
    "context_only": Variant(
        data="ift_all_c",
        about="only C points: the mixture's, and a fresh C point for every C+S and S point (the "
        "theory's control: no fall expected)",
    ),
    **{f"context_critical_{p}": _curated(p) for p in DOSE_PERCENTS},
    "cf_augment": Variant(
        ("--curation", "cf_augment", "--cf_augment_fraction", "0.2"),
        about="20% counterfactual examples mixed in",
    ),
    "full": Variant(("--finetune", "full"), about="every weight trains (for contrast)"),
}
# The dose-responses docs/demo.md compares with the default one; run only when named
# (`cpi demo --variants context_critical_paper_75,...`): the paper's curation on the mixture
# itself (S points kept), and context_critical_all on the mixture itself (no pool).
ABLATIONS: dict[str, Variant] = {
    **{
        f"context_critical_paper_{p}": _curated(p, "context_critical", pool=False)
        for p in DOSE_PERCENTS
    },
    **{f"context_critical_nopool_{p}": _curated(p, pool=False) for p in DOSE_PERCENTS},
}
ALL_VARIANTS: dict[str, Variant] = {**VARIANTS, **ABLATIONS}
# Dropping 0% is no curation: context_critical_0 is the standard run (not trained twice).
ALIASES: dict[str, str] = {"context_critical_0": "standard"}
DOSE_RESPONSE = ("context_critical_0", "context_critical_25", "context_critical_50",
                 "context_critical_75")  # fmt: skip


@dataclass
class DemoRun:
    """Everything one ``cpi demo`` measured: inversion.json per seed and variant, and bases."""

    results: dict[int, dict[str, dict]]
    bases: dict[int, tuple[Path, float]]
    paths: dict[int, dict[str, Path]]
    reused: int = 0  # runs whose inversion.json an earlier cpi demo in OUT had already made
