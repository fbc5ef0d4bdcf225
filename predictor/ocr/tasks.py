"""DeepSeek-OCR's task prompts and how a request's task / raw prompt becomes the model's prompt text.

The model is "not a chatbot": it was trained on a handful of fixed prompts, and the image placeholder must come
first (``<image>\\n<task>``); output degrades when the image follows the text. So the prompt is plain text with
exactly one leading ``<image>`` line and no chat template.
"""

from __future__ import annotations

from predictor.constants import DEFAULT_TASK, TASK_PROMPTS
from predictor.errors import InvalidRequest

IMAGE_TAG = "<image>"
MAX_PROMPT_CHARS = 4000
MAX_REF_CHARS = 200

TASKS = TASK_PROMPTS


def check_text(value: str, name: str) -> str:
    """Refuse text the tokenizer cannot take: a lone UTF-16 surrogate (JSON allows ``"\\ud800"``) is no character."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequest(f"'{name}' contains an unpaired surrogate at position {exc.start}; send valid Unicode",
                             param=name) from exc
    return value


def _check_ref(ref: str | None) -> str:
    if ref is None:
        raise InvalidRequest("the 'locate' task needs 'ref': the text to find in the image", param="ref")
    if not isinstance(ref, str):
        raise InvalidRequest("'ref' must be a string", param="ref")
    ref = check_text(ref, "ref").strip()
    if not ref:
        raise InvalidRequest("'ref' must not be empty", param="ref")
    if len(ref) > MAX_REF_CHARS:
        raise InvalidRequest(f"'ref' is longer than {MAX_REF_CHARS} characters", param="ref")
    # A tag inside the reference would end the <|ref|> span early and change what the model is asked.
    if "<|" in ref or "|>" in ref:
        raise InvalidRequest("'ref' must not contain tag text such as '<|' or '|>'", param="ref")
    return ref


def _task_text(task: str | None, ref: str | None) -> str:
    name = DEFAULT_TASK if task is None else task
    if not isinstance(name, str) or name not in TASKS:
        accepted = ", ".join(sorted(TASKS))
        raise InvalidRequest(f"unknown task {name!r}; accepted values: {accepted}", param="task")
    template = TASKS[name]
    if name == "locate":
        return template.format(ref=_check_ref(ref))
    return template


def _raw_prompt_text(prompt: str) -> str:
    if not isinstance(prompt, str):
        raise InvalidRequest("'prompt' must be a string", param="prompt")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InvalidRequest(f"'prompt' is longer than {MAX_PROMPT_CHARS} characters", param="prompt")
    check_text(prompt, "prompt")
    # The image placeholder count must match the image embeddings exactly, so user-placed ones are removed and a
    # single one is put first, where the model expects it. Removing one can join its neighbours into another
    # ("<<image>image>"), so repeat until none is left.
    text = prompt
    while IMAGE_TAG in text:
        text = text.replace(IMAGE_TAG, "")
    text = text.strip()
    if not text:
        raise InvalidRequest("'prompt' has no text besides the image placeholder", param="prompt")
    return text


def build_prompt(task: str | None = None, prompt: str | None = None, ref: str | None = None) -> str:
    """The prompt text for one image: ``"<image>\\n" + instruction``.

    A raw ``prompt`` overrides ``task`` (and ``ref`` is then ignored); with neither, the plain OCR task is used.
    """
    text = _raw_prompt_text(prompt) if prompt is not None else _task_text(task, ref)
    return f"{IMAGE_TAG}\n{text.strip()}"
