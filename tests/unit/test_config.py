"""Settings: flags and PREDICTOR_* environment variables, validated before any weights load."""

from __future__ import annotations

import pytest

from predictor.config import DEFAULT_MODEL_ID, build_parser, settings_from_args
from predictor.errors import ConfigError


def _settings(argv: list[str], monkeypatch=None, env: dict[str, str] | None = None):
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    return settings_from_args(build_parser().parse_args(argv))


def test_defaults(tiny_v2_dir):
    s = _settings([])
    assert s.model_source == DEFAULT_MODEL_ID and s.model_name == "deepseek-ocr"
    assert (s.max_batch_size, s.max_queue, s.ngram_size, s.ngram_window) == (8, 64, 30, 90)
    assert _settings(["--model_dir", tiny_v2_dir]).model_source == tiny_v2_dir


def test_environment_fills_flags_and_command_line_wins(monkeypatch):
    s = _settings(["--max_queue", "3"], monkeypatch, {"PREDICTOR_MAX_BATCH_SIZE": "16", "PREDICTOR_MAX_QUEUE": "9",
                                                       "PREDICTOR_SERVED_MODEL_NAMES": "a, b",
                                                       "PREDICTOR_ALLOW_REMOTE_IMAGES": "true",
                                                       "PREDICTOR_REMOTE_IMAGE_HOSTS": "img.example.com"})
    assert s.max_batch_size == 16 and s.max_queue == 3
    assert s.served_model_names == ["a", "b"]
    assert s.all_model_names == ["deepseek-ocr", "a", "b", "deepseek-ai/DeepSeek-OCR"]  # the hub id, as vLLM
    assert s.allow_remote_images is True and s.remote_image_hosts == ["img.example.com"]


def test_hub_id_of_a_local_checkpoint(tiny_v1_dir, tiny_v2_dir, tmp_path):
    from predictor.config import Settings

    assert Settings(model_dir=tiny_v2_dir).hub_name == "deepseek-ai/DeepSeek-OCR-2"
    assert Settings(model_dir=tiny_v1_dir).hub_name == "deepseek-ai/DeepSeek-OCR"
    assert Settings(model_id="org/fine-tune").all_model_names == ["deepseek-ocr", "org/fine-tune"]
    assert Settings(model_dir=tiny_v2_dir, serve_hub_name=False).all_model_names == ["deepseek-ocr"]
    cached = tmp_path / "models--acme--ocr-ft" / "snapshots" / "abc"
    cached.mkdir(parents=True)
    (cached / "config.json").write_text("{}")
    assert Settings(model_dir=str(cached)).hub_name == "acme/ocr-ft"


@pytest.mark.parametrize(("argv", "env", "message"), [
    (["--model_dir", "/nonexistent"], {}, "config.json"),
    (["--max_batch_size", "0"], {}, "max_batch_size"),
    (["--default_max_tokens", "9000"], {}, "default_max_tokens"),
    (["--remote_image_hosts", "x.org"], {}, "allow_remote_images"),
    (["--allow_remote_images", "true"], {}, "remote_image_hosts"),
    (["--ngram_size", "40", "--ngram_window", "10"], {}, "ngram"),
    ([], {"PREDICTOR_MAX_QUEUE": "many"}, "PREDICTOR_MAX_QUEUE"),
    ([], {"PREDICTOR_DEVICE": "tpu"}, "--device"),
    (["--device", "cpu", "--dtype", "float16"], {}, "float16"),
])
def test_bad_combinations_fail_with_a_clear_message(monkeypatch, argv, env, message):
    with pytest.raises(ConfigError, match=message):
        _settings(argv, monkeypatch, env)


def test_model_id_and_model_dir_together(tiny_v2_dir):
    with pytest.raises(ConfigError, match="not both"):
        _settings(["--model_dir", tiny_v2_dir, "--model_id", "deepseek-ai/DeepSeek-OCR"])


def test_prefill_workers_auto_and_explicit(monkeypatch):
    from predictor.ocr.hardware import choose_hardware

    assert choose_hardware(_settings(["--device", "cpu"])).prefill_workers == 2
    assert choose_hardware(_settings(["--device", "cpu", "--prefill_workers", "3"])).prefill_workers == 3
    assert "prefill_workers=2" in choose_hardware(_settings(["--device", "cpu"])).description
    with pytest.raises(ConfigError, match="--prefill_workers"):
        _settings(["--prefill_workers", "-1"])
