"""The resolve step: options + family + task checked once, right after parsing, before any decoding."""

from __future__ import annotations

import pytest

from predictor.config import Settings
from predictor.errors import ConfigError, InvalidRequest
from predictor.families.base import ImageOptions
from predictor.families.v1.family import DeepseekOcrV1Family
from predictor.families.v2 import DeepseekOcr2Family
from predictor.ocr import resolve
from predictor.ocr.options import OcrOptions, parse_options
from predictor.ocr.service import merge_pages
from predictor.ocr.types import OcrOutput
from tests.conftest import png_bytes

PDF = b"%PDF-1.4 not really a pdf"


def _resolver(**settings) -> resolve.Resolver:
    return resolve.Resolver(Settings(**settings), DeepseekOcr2Family)


def test_defaults_filled_from_server_and_family():
    resolved = _resolver(default_max_tokens=100, max_new_tokens=200).options(OcrOptions())
    assert resolved.image == ImageOptions("dynamic", 6)
    assert resolved.prompt == "<image>\nFree OCR." and resolved.max_tokens == 100
    assert (resolved.ngram_size, resolved.ngram_window) == (30, 90)
    capped = _resolver(default_max_tokens=100, max_new_tokens=200).options(OcrOptions(max_tokens=5000))
    assert capped.max_tokens == 200
    assert _resolver(default_mode="global").options(OcrOptions()).image.mode == "global"


def test_pdf_documents_get_deepseeks_pdf_guard_unless_the_request_says():
    resolver = _resolver()
    assert (resolver.options(OcrOptions(), "pdf").ngram_size, resolver.options(OcrOptions(), "pdf").ngram_window) \
        == (20, 50)
    explicit = resolver.options(OcrOptions(ngram_size=7, ngram_window=70), "pdf")
    assert (explicit.ngram_size, explicit.ngram_window) == (7, 70)


@pytest.mark.parametrize(("values", "param"), [
    ({"mode": "gundam"}, "mode"),  # a v1 mode on a v2 model
    ({"max_crops": 7}, "max_crops"),  # v2 allows 6
    ({"task": "locate"}, "ref"),
    ({"task": "nope"}, "task"),
    ({"prompt": "<image>"}, "prompt"),
])
def test_bad_values_are_400_naming_the_field(values, param):
    with pytest.raises(InvalidRequest) as info:
        _resolver().options(parse_options(values))
    assert info.value.param == param


def test_a_bad_option_is_refused_before_the_document_is_decoded(monkeypatch):
    def must_not_decode(*args, **kwargs):
        raise AssertionError("decoded before the options were checked")

    monkeypatch.setattr(resolve, "decode_documents", must_not_decode)
    with pytest.raises(InvalidRequest) as info:
        _resolver().document(PDF, "instances[0].image", OcrOptions(mode="tiny"), where="instances[0]")
    assert info.value.param == "instances[0].mode"


def test_document_kind_and_pages():
    doc = _resolver().document(png_bytes(), "image", OcrOptions())
    assert doc.kind == "image" and len(doc.pages) == 1 and doc.options.ngram_size == 30


def test_max_crops_bound_is_the_familys():
    assert resolve.Resolver(Settings(), DeepseekOcrV1Family).options(OcrOptions(max_crops=9)).image.max_crops == 9
    with pytest.raises(InvalidRequest):
        _resolver().options(OcrOptions(max_crops=9))


def test_bad_default_mode_fails_at_start_up_naming_the_flag(tiny_v2_dir):
    from predictor.protocols.kserve.model import OcrModel

    with pytest.raises(ConfigError, match="--default_mode 'gundam'.*dynamic, global"):
        resolve.check_default_mode(Settings(default_mode="gundam"), DeepseekOcr2Family)
    resolve.check_default_mode(Settings(default_mode="gundam"), DeepseekOcrV1Family)
    model = OcrModel(Settings(model_dir=tiny_v2_dir, device="cpu", default_mode="gundam"))
    with pytest.raises(ConfigError, match="--default_mode"):
        model.load()  # refused before any weight is read
    assert not model.loaded


def _page(text: str, label: str, finish: str = "stop") -> OcrOutput:
    return OcrOutput(text=text, raw_text=text, finish_reason=finish, prompt_tokens=10, completion_tokens=3,
                     image_tokens=5, blocks=[{"label": label, "box": [0, 0, 1, 1]}])


def test_one_merge_for_every_protocol_openai_blocks_carry_their_page():
    from predictor.protocols.openai.protocol import ChatRequest, completion

    merged = merge_pages([_page("a", "x"), _page("b", "y", "length")])
    body = completion(ChatRequest(model="m", images=[], options=OcrOptions()), "m", merged)
    assert [b["page"] for b in body["ocr"]["blocks"]] == [1, 2]
    assert [p["blocks"][0]["label"] for p in body["ocr"]["pages"]] == ["x", "y"]
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["prompt_tokens"] == 20 and body["usage"]["completion_tokens"] == 6
    assert body["choices"][0]["message"]["content"] == "a\n\n<--- Page Split --->\n\nb"
    single = completion(ChatRequest(model="m", images=[], options=OcrOptions()), "m", _page("a", "x"))
    assert "page" not in single["ocr"]["blocks"][0] and len(single["ocr"]["pages"]) == 1
