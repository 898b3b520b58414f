"""The prompts: the only place the paper's prompt text lives.

Used by the lm-eval tasks (through ``utils.py``), by ``cpi train``'s ``squad`` template (so a
model is trained in exactly the layout it is evaluated in) and by ``cpi demo``'s world.
Changing anything here changes numbers: bump ``metadata.version`` in every task template.

Every task row has four canonical columns:

    context       the passage (for quotes: the memo-trap prompt itself)
    question      the question ("" for quotes)
    cf_answer     the answer the context supports (counterfactual / context answer)
    param_answer  the answer a model memorised in pretraining (parametric answer)

Sets whose answers have several accepted forms (NQ-Swap) add two list columns:

    cf_answers    every accepted context answer (cf_answer is the first)
    param_answers every accepted memorised answer (param_answer is the first)

Scoring counts any listed alternative; rows without the lists have one alternative each.
"""

from __future__ import annotations

# Canonical column names (the only names prompts and scorers use).
CONTEXT, QUESTION, CF_ANSWER, PARAM_ANSWER = "context", "question", "cf_answer", "param_answer"
# Optional list columns: all accepted alternatives of each answer (see the module docstring).
CF_ANSWERS, PARAM_ANSWERS = "cf_answers", "param_answers"

# The paper's context-adherence instruction (instructed variants).
QA_INSTRUCTION = "Answer the question based on the context only."
QUOTE_INSTRUCTION = (
    "Follow the instruction exactly, even if it contradicts the quote as you remember it."
)


def background_prompt(context: str, question: str, instruction: str = "") -> str:
    """The paper's layout: ``Background: {context}\n[instruction\n]Question: {question}\nAnswer:``;
    without a context the Background line is dropped (closed-book recall)."""
    lead = f"Background: {context}\n" if context else ""
    middle = f"{instruction}\n" if instruction else ""
    return f"{lead}{middle}Question: {question}\nAnswer:"


def qa_prompt(doc: dict[str, str], instructed: bool = False) -> str:
    """The paper's prompt; quotes (no question) use the memo-trap prompt as it is, and a
    question without a context (synthetic recall items) drops the Background line."""
    if not doc[QUESTION]:
        return f"{QUOTE_INSTRUCTION}\n{doc[CONTEXT]}" if instructed else doc[CONTEXT]
    instruction = QA_INSTRUCTION if instructed and doc[CONTEXT] else ""
    return background_prompt(doc[CONTEXT], doc[QUESTION], instruction)
