from __future__ import annotations

import pytest

from predictor.errors import InvalidRequest
from predictor.ocr.tasks import TASKS, build_prompt


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        (None, "<image>\nFree OCR."),
        ("ocr", "<image>\nFree OCR."),
        ("markdown", "<image>\n<|grounding|>Convert the document to markdown."),
        ("grounding", "<image>\n<|grounding|>OCR this image."),
        ("figure", "<image>\nParse the figure."),
        ("describe", "<image>\nDescribe this image in detail."),
    ],
)
def test_task_prompts_are_deepseeks(task: str | None, expected: str) -> None:
    assert build_prompt(task) == expected


def test_locate_puts_ref_inside_tags() -> None:
    assert build_prompt("locate", ref="  the total ") == "<image>\nLocate <|ref|>the total<|/ref|> in the image."


def test_every_task_is_listed() -> None:
    assert set(TASKS) == {"ocr", "markdown", "grounding", "figure", "describe", "locate"}


def test_unknown_task_names_param_and_lists_choices() -> None:
    with pytest.raises(InvalidRequest) as err:
        build_prompt("translate")
    assert err.value.param == "task"
    for name in TASKS:
        assert name in err.value.message


@pytest.mark.parametrize("ref", [None, "", "   ", "x" * 201, "a<|ref|>b", "<|/ref|>", "x|>y"])
def test_bad_ref_is_rejected(ref: str | None) -> None:
    with pytest.raises(InvalidRequest) as err:
        build_prompt("locate", ref=ref)
    assert err.value.param == "ref"


def test_ref_of_max_length_is_accepted() -> None:
    assert build_prompt("locate", ref="x" * 200).count("x") == 200


def test_raw_prompt_overrides_task_and_gets_one_leading_image() -> None:
    assert build_prompt("markdown", prompt="  Read the table. ") == "<image>\nRead the table."
    assert build_prompt(prompt="Text first <image> then image") == "<image>\nText first  then image"
    assert build_prompt(prompt="<image>\n<image>Free OCR.") == "<image>\nFree OCR."


def test_raw_prompt_with_unknown_task_still_works() -> None:
    # The raw prompt wins; the task is not consulted at all.
    assert build_prompt("nonsense", prompt="Free OCR.") == "<image>\nFree OCR."


def test_raw_prompt_limits() -> None:
    assert build_prompt(prompt="a" * 4000).endswith("a" * 4000)
    with pytest.raises(InvalidRequest) as err:
        build_prompt(prompt="a" * 4001)
    assert err.value.param == "prompt"
    with pytest.raises(InvalidRequest) as err:
        build_prompt(prompt=" <image> \n ")
    assert err.value.param == "prompt"


def test_prompt_always_starts_with_exactly_one_image() -> None:
    for prompt in (build_prompt(t, ref="x") for t in TASKS):
        assert prompt.startswith("<image>\n")
        assert prompt.count("<image>") == 1
        assert prompt == prompt.strip()
