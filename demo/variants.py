"""The variants of ``cpi demo`` (what each run trains on) and the record of a demo's runs;
shared by ``demo.py`` (which runs them) and ``report.py`` (which reports them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["ALIASES", "DOSE_RESPONSE", "VARIANTS", "DemoRun", "Variant"]


@dataclass(frozen=True)
class Variant:
    """One finetuning run per seed: extra ``cpi train`` arguments and the data it trains on."""

    args: tuple[str, ...] = ()
    data: str = "ift"  # a role of World.write(): "ift" (the mixture) or "ift_all_c" (only C)
    drop: float | None = None  # context_critical: fraction of the context examples dropped
    about: str = ""


def _curated(percent: int) -> Variant:
    return Variant(
        ("--curation", "context_critical", "--context_critical_drop", f"{percent / 100:g}"),
        drop=percent / 100,
        about=f"context_critical curation, the {percent}% of the context examples with the "
        "lowest base-model loss without their context dropped",
    )


VARIANTS: dict[str, Variant] = {
    "standard": Variant(about="the mixture; only W_q and W_k train (the paper's QK finetuning)"),
    "context_only": Variant(
        data="ift_all_c",
        about="only C points: the mixture's, and a fresh C point for every C+S and S point (the "
        "theory's control: no fall expected)",
    ),
    **{f"context_critical_{p}": _curated(p) for p in (25, 50, 75)},
    "cf_augment": Variant(
        ("--curation", "cf_augment", "--cf_augment_fraction", "0.2"),
        about="20% counterfactual examples mixed in",
    ),
    "full": Variant(("--finetune", "full"), about="every weight trains (for contrast)"),
}
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
