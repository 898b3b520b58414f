"""The synthetic fact world of ``cpi demo`` and the base model that memorises it.

A seeded world of made-up subjects, a few relations (capital, language, currency, ...) and
answer words. Known subjects' facts are what pretraining teaches (parametric knowledge);
unknown subjects appear only with a context. Everything the demo trains or evaluates on is
written as ordinary files, so it goes through the same loaders as real data:

    OUT/world/pretrain.txt          pretraining texts: fact sentences, the same facts as
                                    "Question: ...\nAnswer: ..." pairs, reading passages
    OUT/world/ift.jsonl             the IFT mixture, Alpaca schema (instruction, input, output)
    OUT/world/ift_kinds.json        the kind of every IFT row: C, C+S or S (for reports)
    OUT/world/ift_pool_<p>.jsonl    for the curated variants: the mixture plus more rows of the
                                    same shares, n_ift / (1 - p/100) rows in all, so that the
                                    curation dropping p% leaves n_ift rows (and its kinds file)
    OUT/world/ift_all_c.jsonl       the mixture with every C+S and S row replaced by a fresh C
                                    row (the demo's context_only control: only C points)
    OUT/world/cf_augment.jsonl      counterfactual examples, cpi schema, for cf_augment
    OUT/world/cpisynth_cf.jsonl     counterfactual test items (the cpisynth_cf tasks)
    OUT/world/cpisynth_id.jsonl     held-out C, C+S and recall items (cpisynth_id)

Kinds of IFT examples (the paper's §5):
- S: a known subject, no context; the answer is recalled from memory;
- C+S: a known subject, a context that agrees with memory (non-context-critical);
- C: an unknown subject, a context that states the answer (context-critical).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..tasks.prompts import background_prompt

RELATIONS: dict[str, tuple[str, str]] = {
    # name: (question, statement); {s} = subject, {a} = answer
    "capital": ("What is the capital of {s}?", "The capital of {s} is {a}."),
    "language": ("What language is spoken in {s}?", "People in {s} speak {a}."),
    "currency": ("What is the currency of {s}?", "The currency of {s} is the {a}."),
    "animal": ("What is the national animal of {s}?", "The national animal of {s} is the {a}."),
}

_ONSETS = "b d f g k l m n p r s t v z".split()
_VOWELS = "a e i o u".split()


@dataclass(frozen=True)
class WorldConfig:
    """Sizes and mixture of the synthetic world (every field is part of the cache key)."""

    seed: int = field(default=0, metadata={"help": "seed of the world"})
    n_known: int = field(default=120, metadata={"help": "subjects memorised in pretraining"})
    n_answers: int = field(default=24, metadata={"help": "answer words per relation"})
    n_ift: int = field(default=3000, metadata={"help": "IFT examples"})
    # 10% C, 10% S, 80% C+S: the non-context-critical C+S points dominate, so the fall comes
    # mostly from what context_critical removes (docs/demo.md, "Why these defaults").
    c_fraction: float = field(default=0.1, metadata={"help": "share of C points"})
    s_fraction: float = field(default=0.1, metadata={"help": "share of S points"})
    reading_fraction: float = field(
        default=0.5, metadata={"help": "share of reading passages in pretraining"}
    )
    qa_recall_fraction: float = field(
        default=1.0,
        metadata={
            "help": "share of known facts also pretrained in the QA layout, no context (so the "
            "base model can answer from memory in the evaluation prompt, as an LLM can)"
        },
    )
    n_eval: int = field(default=360, metadata={"help": "items per evaluation set"})
    n_cf_augment: int = field(
        default=600, metadata={"help": "counterfactual examples for cf_augment"}
    )


def _names(rng: random.Random, n: int, taken: set[str], syllables: int) -> list[str]:
    out = []
    while len(out) < n:
        name = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables))
        if name not in taken:
            taken.add(name)
            out.append(name)
    return out


# The fields that shape pretraining (facts, reading passages, tokenizer); the base model's cache
# key uses only these, so worlds that differ only in their IFT mixture share a base model.
PRETRAINING_FIELDS = ("seed", "n_known", "n_answers", "reading_fraction", "qa_recall_fraction")


class World:
    """Subjects, answers and facts; build every dataset from them deterministically."""

    def __init__(self, cfg: WorldConfig) -> None:
        self.cfg = cfg
        rng = random.Random(cfg.seed)
        taken: set[str] = set()
        self.answers = {r: _names(rng, cfg.n_answers, taken, 2) for r in RELATIONS}
        self.known = _names(rng, cfg.n_known, taken, 3)
        self.facts = {(s, r): rng.choice(self.answers[r]) for s in self.known for r in RELATIONS}
        # Unknown subjects, drawn once and disjoint: reading passages, C points, held-out C
        # items. Fixed here so every builder below is a pure function of the config.
        n_read = int(len(self.facts) * cfg.reading_fraction / (1 - cfg.reading_fraction))
        self.reading_subjects = _names(rng, n_read, taken, 3)
        self.c_subjects = _names(rng, round(cfg.n_ift * cfg.c_fraction), taken, 3)
        self.id_subjects = _names(rng, cfg.n_eval // 3, taken, 3)
        # Drawn last, so the sets above do not depend on it: the all-C control's extra subjects.
        self.c_only_subjects = _names(rng, cfg.n_ift - len(self.c_subjects), taken, 3)
        self._taken = frozenset(taken)  # every name so far: pool subjects avoid them

    def pretraining_config(self) -> dict:
        """The config fields that pretraining depends on (the base model's cache key)."""
        return {k: getattr(self.cfg, k) for k in PRETRAINING_FIELDS}

    def layout_rows(self, n: int) -> list[dict]:
        """``n`` known facts as Alpaca rows with their context (tokenizer training: the QA
        layout's words), independent of the IFT mixture."""
        rng = random.Random(self.cfg.seed + 6)
        facts = rng.sample(sorted(self.facts.items()), min(n, len(self.facts)))
        return [self.qa(s, r, a) for (s, r), a in facts]

    def qa(self, subject: str, relation: str, answer: str, context: bool = True) -> dict:
        question, statement = RELATIONS[relation]
        return {
            "instruction": question.format(s=subject),
            "input": statement.format(s=subject, a=answer) if context else "",
            "output": answer,
        }

    def pretraining_lines(self) -> list[str]:
        """Fact sentences for every known fact, plus reading passages about unknown subjects
        (the fact stated, then restated), so the base model can already copy from text, plus
        ``qa_recall_fraction`` of the facts as context-free question/answer pairs, so it can
        answer from memory in the evaluation layout (as a pretrained LLM can)."""
        rng = random.Random(self.cfg.seed + 1)
        lines = [RELATIONS[r][1].format(s=s, a=a) for (s, r), a in self.facts.items()]
        for subject in self.reading_subjects:
            relation = rng.choice(list(RELATIONS))
            answer = rng.choice(self.answers[relation])
            statement = RELATIONS[relation][1].format(s=subject, a=answer)
            lines.append(f"{statement} So, {statement[0].lower()}{statement[1:]}")
        n_qa = round(len(self.facts) * self.cfg.qa_recall_fraction)
        for (s, r), a in rng.sample(sorted(self.facts.items()), n_qa):
            lines.append(f"{background_prompt('', RELATIONS[r][0].format(s=s))} {a}")
        rng.shuffle(lines)
        return lines

    def recall_prompts(self) -> list[tuple[str, str]]:
        """(prefix, answer) pairs: the statement of every known fact cut before the answer."""
        out = []
        for (s, r), a in self.facts.items():
            statement = RELATIONS[r][1].format(s=s, a=a)
            out.append((statement[: statement.rindex(a)].rstrip(), a))
        return out

    def _rows_of_kinds(self, rng: random.Random, kinds: list[str], c_subjects) -> list[dict]:
        """One Alpaca row per kind: C rows take the next of ``c_subjects`` and a random answer;
        S and C+S rows ask a random known fact (C+S with its context, S without)."""
        fresh = iter(c_subjects)
        rows = []
        for kind in kinds:
            relation = rng.choice(list(RELATIONS))
            if kind == "C":
                rows.append(self.qa(next(fresh), relation, rng.choice(self.answers[relation])))
            else:
                subject = rng.choice(self.known)
                rows.append(
                    self.qa(subject, relation, self.facts[subject, relation], context=kind == "C+S")
                )
        return rows

    def _kinds(self, rng: random.Random, n: int) -> list[str]:
        n_c, n_s = round(n * self.cfg.c_fraction), round(n * self.cfg.s_fraction)
        kinds = ["C"] * n_c + ["S"] * n_s + ["C+S"] * (n - n_c - n_s)
        rng.shuffle(kinds)
        return kinds

    def ift_rows(self) -> tuple[list[dict], list[str]]:
        """The IFT mixture (Alpaca rows) and the kind of each row."""
        rng = random.Random(self.cfg.seed + 2)
        kinds = self._kinds(rng, self.cfg.n_ift)
        return self._rows_of_kinds(rng, kinds, self.c_subjects), kinds

    def pool_rows(self, n: int) -> tuple[list[dict], list[str]]:
        """A larger pool of ``n`` >= n_ift rows for a curation to cut down: the mixture itself,
        then ``n - n_ift`` more rows of the same kind shares (new C subjects, the same known
        facts). Dropping the fraction d of a pool of n_ift / (1 - d) rows leaves as many rows
        as the mixture, so a curated run repeats its data as often as the standard run."""
        rows, kinds = self.ift_rows()
        extra = n - len(rows)
        if extra <= 0:
            return rows[:n], kinds[:n]
        rng = random.Random(self.cfg.seed + 8)
        more = self._kinds(rng, extra)
        subjects = _names(random.Random(self.cfg.seed + 9), more.count("C"), set(self._taken), 3)
        return rows + self._rows_of_kinds(rng, more, subjects), kinds + more

    def all_c_rows(self) -> list[dict]:
        """The context_only control: the mixture with its C rows kept and every C+S and S row
        replaced by a fresh C row (a new unknown subject, a random answer), so it has as many
        distinct examples as the mixture. (The mixture's C rows alone, repeated for as many
        steps, are seen tens of times each; the paper's Proposition 3 and the knob search
        warn that a small repeated C pool is fitted rather than read.)"""
        rng = random.Random(self.cfg.seed + 7)
        rows, kinds = self.ift_rows()
        fresh = iter(self.c_only_subjects)
        out = []
        for row, kind in zip(rows, kinds, strict=True):
            if kind == "C":
                out.append(row)
                continue
            relation = rng.choice(list(RELATIONS))
            out.append(self.qa(next(fresh), relation, rng.choice(self.answers[relation])))
        return out

    def counterfactual_rows(self, n: int, seed_offset: int) -> list[dict]:
        """Known subjects with a context stating another answer (cpi schema)."""
        rng = random.Random(self.cfg.seed + seed_offset)
        rows = []
        for _ in range(n):
            subject = rng.choice(self.known)
            relation = rng.choice(list(RELATIONS))
            memory = self.facts[subject, relation]
            other = rng.choice([a for a in self.answers[relation] if a != memory])
            question, statement = RELATIONS[relation]
            rows.append(
                {
                    "context": statement.format(s=subject, a=other),
                    "question": question.format(s=subject),
                    "answer": other,
                    "memory_answer": memory,
                }
            )
        return rows

    def id_rows(self) -> list[dict]:
        """Held-out in-distribution items: C (new subjects), C+S, and recall (no context)."""
        rng = random.Random(self.cfg.seed + 4)
        per_kind = self.cfg.n_eval // 3
        rows = []
        for subject in self.id_subjects:
            relation = rng.choice(list(RELATIONS))
            rows.append(self.qa(subject, relation, rng.choice(self.answers[relation])))
        for context in (True, False):
            for _ in range(per_kind):
                subject, relation = rng.choice(self.known), rng.choice(list(RELATIONS))
                rows.append(self.qa(subject, relation, self.facts[subject, relation], context))
        return [
            {"context": r["input"], "question": r["instruction"], "answer": r["output"]}
            for r in rows
        ]

    def write(self, folder: Path, drops: tuple[float, ...] = ()) -> dict[str, Path]:
        """Write every file of the world into ``folder``; return their paths by role. For each
        curation fraction in ``drops`` also a pool (``pool_roles``) that the curation cuts
        down to n_ift rows."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = {
            name: folder / file
            for name, file in (
                ("pretrain", "pretrain.txt"),
                ("ift", "ift.jsonl"),
                ("kinds", "ift_kinds.json"),
                ("ift_all_c", "ift_all_c.jsonl"),
                ("cf_augment", "cf_augment.jsonl"),
                ("cf", "cpisynth_cf.jsonl"),
                ("id", "cpisynth_id.jsonl"),
                ("config", "world.json"),
            )
        }
        paths["pretrain"].write_text("\n".join(self.pretraining_lines()) + "\n")
        rows, kinds = self.ift_rows()
        _write_jsonl(paths["ift"], rows)
        paths["kinds"].write_text(json.dumps(kinds))
        for drop in drops:
            data, kinds_role = pool_roles(drop)
            paths[data], paths[kinds_role] = folder / f"{data}.jsonl", folder / f"{data}_kinds.json"
            rows, kinds = self.pool_rows(round(self.cfg.n_ift / (1 - drop)))
            _write_jsonl(paths[data], rows)
            paths[kinds_role].write_text(json.dumps(kinds))
        _write_jsonl(paths["ift_all_c"], self.all_c_rows())
        _write_jsonl(
            paths["cf_augment"],
            [
                {k: r[k] for k in ("context", "question", "answer")}
                for r in self.counterfactual_rows(self.cfg.n_cf_augment, seed_offset=5)
            ],
        )
        _write_jsonl(paths["cf"], self.counterfactual_rows(self.cfg.n_eval, seed_offset=3))
        _write_jsonl(paths["id"], self.id_rows())
        paths["config"].write_text(json.dumps(asdict(self.cfg), indent=2))
        return paths


def pool_roles(drop: float) -> tuple[str, str]:
    """The roles (file stems) of the pool for curation fraction ``drop`` and of its kinds."""
    name = f"ift_pool_{round(drop * 100)}"
    return name, f"{name}_kinds"


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def config_hash(*parts: object) -> str:
    """A short stable key for a cache folder from dataclasses / JSON-able parts."""
    blob = json.dumps(
        [asdict(p) if hasattr(p, "__dataclass_fields__") else p for p in parts], sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
