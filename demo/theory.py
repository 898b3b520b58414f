"""``cpi theory``: the paper's one-layer attention model of context-parametric inversion.

Section 5 of the paper explains the inversion with a single attention head reading three
tokens, [context, subject, relation]. This is that model as a small torch simulation:

    cpi theory --out OUT                   # OUT/theory.json and OUT/theory.png
    cpi theory --out OUT --s_fraction 0.6  # Proposition 2: more S points, attention to subject
    cpi theory --out OUT --train_value     # Proposition 3: training W_V memorises C points

Embeddings are one-hot in R^d with d = 3 + answers + subjects: a shared context direction
theta_C, a shared subject direction theta_S (theta_C is orthogonal to theta_S), a relation
token, one direction per answer and one per subject. A context stating answer a is
``theta_C + u_a`` (an empty context is ``theta_C``); a subject token is ``theta_S + e_s``.
The head is frozen to the answer embeddings (W_H = U), the query comes from the relation token,
and the output is ``logits = scale * U^T sum_j softmax_j(x_r^T W_KQ x_j) W_V x_j``.

Pretraining fits W_V (attention uniform) on subject-only facts, so the model memorises every
known subject's answer, and W_V starts as the identity on answers, so a context's value is its
answer. Instruction finetuning then trains W_KQ (W_V frozen unless ``--train_value``) on:
- C points: an unseen subject, the context states a fresh answer (context-critical);
- C+S points: a known subject, the context states its memorised answer (non-context-critical);
- S points: a known subject, an empty context.
Every ``--eval_every`` steps the counterfactual items (known subject, context stating another
answer) give M_C = p(context answer) / (p(context answer) + p(memorised answer)) (eq. 14),
averaged, and the attention on the context and on the subject token.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..harness_ext.core.files import atomic_write_bytes, atomic_write_json, claim_output_dir


@dataclass
class TheoryConfig:
    """Sizes, data mixture and optimisation of the simulation (defaults show the inversion)."""

    n_answers: int = field(default=32, metadata={"help": "answer vocabulary size"})
    n_known: int = field(default=8, metadata={"help": "subjects memorised in pretraining"})
    n_unknown: int = field(default=512, metadata={"help": "subjects never seen in pretraining"})
    c_fraction: float = field(default=0.2, metadata={"help": "share of C points in IFT"})
    s_fraction: float = field(default=0.2, metadata={"help": "share of S points in IFT"})
    value_scale: float = field(
        default=2.0, metadata={"help": "memorised facts' value norm over a context's"}
    )
    logit_scale: float = field(default=8.0, metadata={"help": "scale of the frozen head"})
    pretrain_steps: int = field(default=300, metadata={"help": "steps fitting W_V on facts"})
    steps: int = field(default=1500, metadata={"help": "instruction-finetuning steps"})
    lr: float = field(default=0.5, metadata={"help": "SGD learning rate for W_KQ (and W_V)"})
    batch_size: int = field(default=64, metadata={"help": "examples per step"})
    eval_every: int = field(default=10, metadata={"help": "steps between measurements"})
    n_eval: int = field(default=256, metadata={"help": "counterfactual items measured"})
    train_value: bool = field(
        default=False, metadata={"help": "also train W_V in IFT (Proposition 3)"}
    )
    c_pool: int = field(
        default=0,
        metadata={
            "help": "draw C points from a fixed pool of this many (0 = a fresh subject every time)"
        },
    )
    seed: int = field(default=0, metadata={"help": "seed for data and initialisation"})

    def __post_init__(self) -> None:
        if not 0 <= self.c_fraction <= 1 or not 0 <= self.s_fraction <= 1:
            raise ValueError("c_fraction and s_fraction must lie in [0, 1]")
        if self.c_fraction + self.s_fraction > 1:
            raise ValueError("c_fraction + s_fraction must be at most 1 (the rest is C+S)")


class OneLayerModel:
    """The embeddings, the frozen head and the two trainable matrices W_KQ and W_V."""

    def __init__(self, cfg: TheoryConfig, gen: torch.Generator) -> None:
        self.cfg = cfg
        self.d = 3 + cfg.n_answers + cfg.n_known + cfg.n_unknown
        self.theta_c, self.theta_s, self.rel = 0, 1, 2
        self.answer0 = 3
        self.subject0 = 3 + cfg.n_answers
        self.known_answer = torch.randint(cfg.n_answers, (cfg.n_known,), generator=gen)
        self.w_kq = torch.zeros(self.d, self.d, requires_grad=True)
        w_v = torch.zeros(self.d, self.d)
        idx = torch.arange(self.answer0, self.subject0)
        w_v[idx, idx] = 1.0  # a context's value is the answer it states
        self.w_v = w_v.requires_grad_(True)

    def tokens(self, subject: torch.Tensor, ctx_answer: torch.Tensor) -> torch.Tensor:
        """[context, subject, relation] one-hot rows; ctx_answer -1 means an empty context."""
        n = subject.shape[0]
        x = torch.zeros(n, 3, self.d)
        x[:, 0, self.theta_c] = 1.0
        has = ctx_answer >= 0
        x[has, 0, self.answer0 + ctx_answer[has]] = 1.0
        x[:, 1, self.theta_s] = 1.0
        x[torch.arange(n), 1, self.subject0 + subject] = 1.0
        x[:, 2, self.rel] = 1.0
        return x

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Answer logits (n, answers) and attention (n, 3) from the relation token."""
        query = x[:, 2, :] @ self.w_kq  # (n, d)
        attn = torch.softmax(torch.einsum("nd,ntd->nt", query, x), dim=-1)
        values = x @ self.w_v.T  # (n, 3, d)
        hidden = torch.einsum("nt,ntd->nd", attn, values)
        answers = hidden[:, self.answer0 : self.subject0]
        return self.cfg.logit_scale * answers, attn


def _batch(cfg: TheoryConfig, model: OneLayerModel, gen: torch.Generator, n: int):
    """One IFT batch: (subject, context answer, target) for a C / C+S / S mixture."""
    kind = torch.rand(n, generator=gen)
    is_c = kind < cfg.c_fraction
    is_s = (kind >= cfg.c_fraction) & (kind < cfg.c_fraction + cfg.s_fraction)
    known = torch.randint(cfg.n_known, (n,), generator=gen)
    pool = cfg.c_pool or cfg.n_unknown
    unknown = cfg.n_known + torch.randint(min(pool, cfg.n_unknown), (n,), generator=gen)
    subject = torch.where(is_c, unknown, known)
    fresh = torch.randint(cfg.n_answers, (n,), generator=gen)
    if cfg.c_pool:  # a fixed pool: each unknown subject always comes with the same answer
        fresh = (unknown * 7919) % cfg.n_answers
    target = torch.where(is_c, fresh, model.known_answer[known])
    ctx = torch.where(is_s, torch.full_like(target, -1), target)
    return subject, ctx, target


def _counterfactual(cfg: TheoryConfig, model: OneLayerModel, gen: torch.Generator):
    known = torch.randint(cfg.n_known, (cfg.n_eval,), generator=gen)
    memorised = model.known_answer[known]
    shift = 1 + torch.randint(cfg.n_answers - 1, (cfg.n_eval,), generator=gen)
    ctx = (memorised + shift) % cfg.n_answers
    return known, ctx, memorised


def pretrain(cfg: TheoryConfig, model: OneLayerModel, gen: torch.Generator) -> float:
    """Fit W_V's subject rows on S points with uniform attention; return final fact recall."""
    opt = torch.optim.SGD([model.w_v], lr=cfg.lr * 4)
    subjects = torch.arange(cfg.n_known)
    x = model.tokens(subjects, torch.full((cfg.n_known,), -1))
    target = model.known_answer
    for _ in range(cfg.pretrain_steps):
        logits, _ = model.forward(x)
        loss = F.cross_entropy(logits, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        # Set the memorised facts' strength relative to a context's value (the theory's
        # assumption that the subject is the stronger predictor once known).
        rows = model.w_v[
            model.answer0 : model.subject0, model.subject0 : model.subject0 + cfg.n_known
        ]
        norms = rows.norm(dim=0, keepdim=True).clamp_min(1e-8)
        rows.mul_(cfg.value_scale / norms)
        logits, _ = model.forward(x)
    return float((logits.argmax(-1) == target).float().mean())


def simulate(cfg: TheoryConfig) -> dict:
    """Pretrain, then finetune W_KQ; return the measured curves (JSON-ready)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # matrices of a few hundred rows: threads only add overhead
    try:
        return _simulate(cfg)
    finally:
        torch.set_num_threads(threads)


def _simulate(cfg: TheoryConfig) -> dict:
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = OneLayerModel(cfg, gen)
    recall = pretrain(cfg, model, gen)
    eval_subject, eval_ctx, eval_mem = _counterfactual(cfg, model, gen)
    eval_x = model.tokens(eval_subject, eval_ctx)
    params = [model.w_kq] + ([model.w_v] if cfg.train_value else [])
    opt = torch.optim.SGD(params, lr=cfg.lr)
    curves: dict[str, list] = {
        "steps": [],
        "m_c": [],
        "attn_context": [],
        "attn_subject": [],
        "cf_acc": [],
        "param_acc": [],
        "train_loss": [],
    }
    loss_value = float("nan")
    for step in range(cfg.steps + 1):
        if step % cfg.eval_every == 0 or step == cfg.steps:
            with torch.no_grad():
                logits, attn = model.forward(eval_x)
                rows = torch.arange(cfg.n_eval)
                p = torch.softmax(logits, -1)
                p_ctx, p_mem = p[rows, eval_ctx], p[rows, eval_mem]
                pred = logits.argmax(-1)
                curves["steps"].append(step)
                curves["m_c"].append(float((p_ctx / (p_ctx + p_mem)).mean()))
                curves["attn_context"].append(float(attn[:, 0].mean()))
                curves["attn_subject"].append(float(attn[:, 1].mean()))
                curves["cf_acc"].append(float((pred == eval_ctx).float().mean()))
                curves["param_acc"].append(float((pred == eval_mem).float().mean()))
                curves["train_loss"].append(loss_value)
        if step == cfg.steps:
            break
        subject, ctx, target = _batch(cfg, model, gen, cfg.batch_size)
        logits, _ = model.forward(model.tokens(subject, ctx))
        loss = F.cross_entropy(logits, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss_value = float(loss.detach())
    if cfg.c_pool:  # Proposition 3: are the pooled C points answered without their context?
        with torch.no_grad():
            pool = torch.arange(cfg.n_known, cfg.n_known + min(cfg.c_pool, cfg.n_unknown))
            logits, _ = model.forward(model.tokens(pool, torch.full_like(pool, -1)))
            memorised = float((logits.argmax(-1) == (pool * 7919) % cfg.n_answers).float().mean())
    m_c = curves["m_c"]
    peak = max(range(len(m_c)), key=m_c.__getitem__)
    summary = {
        "pretrain_recall": recall,
        "m_c_start": m_c[0],
        "m_c_peak": m_c[peak],
        "peak_step": curves["steps"][peak],
        "m_c_end": m_c[-1],
        "rise": m_c[peak] - m_c[0],
        "drop": m_c[peak] - m_c[-1],
        "peak_inside": 0 < peak < len(m_c) - 1,
        "attn_subject_end": curves["attn_subject"][-1],
        "c_pool_recalled_without_context": memorised if cfg.c_pool else None,
    }
    return {"config": asdict(cfg), "summary": summary, **curves}


def plot(result: dict, path: Path) -> None:
    """M_C and the attention shares against IFT steps (rendered from the result only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax1.plot(result["steps"], result["m_c"], color="tab:blue", label="M_C (counterfactual)")
    s = result["summary"]
    ax1.axvline(s["peak_step"], color="grey", ls=":", lw=1)
    ax1.set_xlabel("finetuning step")
    ax1.set_ylabel("context share of probability M_C")
    ax1.set_title(f"rise {s['rise']:.2f}, drop {s['drop']:.2f}")
    ax1.legend(loc="lower right")
    ax2.plot(result["steps"], result["attn_context"], label="attention on context")
    ax2.plot(result["steps"], result["attn_subject"], label="attention on subject")
    ax2.set_xlabel("finetuning step")
    ax2.set_ylabel("attention from the relation token")
    ax2.legend()
    fig.suptitle("one-layer model of context-parametric inversion (paper §5)")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def parse_args(argv: list[str]) -> tuple[TheoryConfig, Any]:
    """(the model's settings, the other options); a bad or unknown option raises
    :class:`CPIError` (one line, exit 2) instead of argparse's usage block."""
    from transformers import HfArgumentParser

    from ..harness_ext.core.cli_args import OneLineErrors
    from ..harness_ext.core.errors import CPIError

    class Parser(OneLineErrors, HfArgumentParser):
        """transformers' dataclass parser, failing in one line."""

    parser = Parser(TheoryConfig, prog="cpi theory", description=__doc__)
    parser.add_argument("--out", required=True, help="folder for theory.json and theory.png")
    cfg, extra, unknown = parser.parse_args_into_dataclasses(
        args=argv, return_remaining_strings=True
    )
    if unknown:
        raise CPIError(f"unrecognized arguments: {' '.join(unknown)} (see cpi theory --help)")
    return cfg, extra


def main(argv: list[str]) -> int:
    """``cpi theory``: simulate, then write theory.json and theory.png into --out, a folder
    claimed as every command's (absent, empty or cpi's own; never a user's files)."""
    cfg, extra = parse_args(argv)
    with claim_output_dir(extra.out, "theory", "--out") as out:
        result = simulate(cfg)
        atomic_write_json(out / "theory.json", result)
        plot(result, out / "theory.png")
    s = result["summary"]
    print(
        f"M_C {s['m_c_start']:.3f} -> peak {s['m_c_peak']:.3f} at step {s['peak_step']} "
        f"-> {s['m_c_end']:.3f} (rise {s['rise']:.3f}, drop {s['drop']:.3f}); "
        f"facts recalled after pretraining: {s['pretrain_recall']:.2f}"
    )
    print(f"wrote {out / 'theory.json'} and {out / 'theory.png'}")
    return 0
