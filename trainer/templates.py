"""Instruction templates: how a canonical row becomes chat messages, and the Jinja chat template
that renders them.

Training renders every example through the template's Jinja chat template (TRL's
conversational path with ``assistant_only_loss``), and the very same string is saved as the
``chat_template`` of every checkpoint's tokenizer. So ``lm_eval --apply_chat_template``
evaluates a checkpoint in the exact format it was trained in; nothing is rendered twice by two
different code paths. ``{% generation %}`` marks the tokens that carry the loss (the response
and its end-of-sequence token); plain rendering ignores the marker.

    alpaca             Stanford Alpaca's prompt; the context goes under "### Input:"
    tulu               TULU's <|user|> / <|assistant|> markers (TULU, UltraChat)
    prompt_completion  the prompt and the completion concatenated, nothing added
    squad              "Background: ...\\nQuestion: ...\\nAnswer: <answer>", the layout of the
                       cpi evaluation tasks
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..tasks.prompts import background_prompt
from .schema import (
    ASSISTANT,
    CONTENT,
    CONTEXT,
    HISTORY,
    INPUT,
    INSTRUCTION,
    RESPONSE,
    ROLE,
    USER,
    CPIError,
)

_BOS = "{% if bos_token %}{{ bos_token }}{% endif %}"

_ALPACA_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.\\n\\n"
)
_ALPACA_NO_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\\n\\n"
)

ALPACA_CHAT_TEMPLATE = (
    _BOS + "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}"
    "{% elif message['role'] == 'user' %}"
    "{% if not loop.last and messages[loop.index0 + 1]['role'] == 'input' %}"
    "{{ '" + _ALPACA_WITH_INPUT + "' }}{% else %}{{ '" + _ALPACA_NO_INPUT + "' }}{% endif %}"
    "{{ '### Instruction:\\n' + message['content'] + '\\n\\n' }}"
    "{% elif message['role'] == 'input' %}{{ '### Input:\\n' + message['content'] + '\\n\\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ '### Response:\\n' }}"
    "{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}"
    "{% if not loop.last %}{{ '\\n\\n' }}{% endif %}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Response:\\n' }}{% endif %}"
)

TULU_CHAT_TEMPLATE = (
    _BOS + "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '<|system|>\\n' + message['content'] + '\\n' }}"
    "{% elif message['role'] == 'user' %}{{ '<|user|>\\n' + message['content'] + '\\n' }}"
    "{% elif message['role'] == 'input' %}{{ message['content'] + '\\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\\n' }}"
    "{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}"
    "{% if not loop.last %}{{ '\\n' }}{% endif %}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)

PROMPT_COMPLETION_CHAT_TEMPLATE = (
    _BOS + "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}"
    "{% else %}{{ message['content'] }}{% endif %}{% endfor %}"
)

SQUAD_CHAT_TEMPLATE = (
    _BOS + "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ ' ' + message['content'] + eos_token }}{% endgeneration %}"
    "{% if not loop.last %}{{ '\\n\\n' }}{% endif %}"
    "{% elif message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}"
    "{% else %}{{ message['content'] }}{% endif %}{% endfor %}"
)


def _join(context: str, instruction: str) -> str:
    """Context above the request, for templates without a separate input slot."""
    return f"{context}\n\n{instruction}" if context else instruction


def _squad_prompt(context: str, instruction: str) -> str:
    """The cpi tasks' own layout (tasks/prompts.py), so training matches evaluation."""
    return background_prompt(context, instruction)


@dataclass(frozen=True)
class Template:
    """A named instruction template: the Jinja chat template and how a row fills it.

    ``input_turn``: the context is its own ``input`` message (Alpaca); otherwise ``user_text``
    folds it into the user message.
    """

    name: str
    chat_template: str
    input_turn: bool = False
    squad_layout: bool = False

    def user_text(self, instruction: str, context: str) -> str:
        if self.squad_layout:
            return _squad_prompt(context, instruction)
        return instruction if self.input_turn else _join(context, instruction)

    def to_messages(self, row: dict[str, Any], with_context: bool = True) -> list[dict[str, str]]:
        """Messages of one canonical row; ``with_context=False`` leaves the context out (used
        to score how well the base model answers without it)."""
        context = row[CONTEXT].strip() if with_context else ""
        messages = [{ROLE: m[ROLE], CONTENT: m[CONTENT]} for m in row.get(HISTORY) or []]
        messages.append({ROLE: USER, CONTENT: self.user_text(row[INSTRUCTION], context)})
        if self.input_turn and context:
            messages.append({ROLE: INPUT, CONTENT: context})
        messages.append({ROLE: ASSISTANT, CONTENT: row[RESPONSE]})
        return messages


TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        Template("alpaca", ALPACA_CHAT_TEMPLATE, input_turn=True),
        Template("tulu", TULU_CHAT_TEMPLATE),
        Template("prompt_completion", PROMPT_COMPLETION_CHAT_TEMPLATE),
        Template("squad", SQUAD_CHAT_TEMPLATE, squad_layout=True),
    )
}


def get_template(name: str) -> Template:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise CPIError(
            f"unknown --template {name!r}; choose auto or one of {', '.join(TEMPLATES)}"
        ) from None


def render(
    template: Template,
    tokenizer: Any,
    messages: list[dict[str, str]],
    add_generation_prompt: bool = False,
) -> str:
    """The text the tokenizer sees for ``messages`` (for tests and inspection)."""
    return tokenizer.apply_chat_template(
        messages,
        chat_template=template.chat_template,
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
    )
