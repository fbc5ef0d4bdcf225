"""--cuda_graphs (engine/graph_setup.py): the decision, the comparison and the self-check run on CPU; the capture
itself needs CUDA (bench/gpu_check.py's graph stages), and without it ``auto`` is off and ``on`` stops start-up."""

from __future__ import annotations

import pytest
import torch

from predictor.config import build_parser, settings_from_args
from predictor.engine import graph_setup
from predictor.engine.config import EngineConfig
from predictor.engine.engine import Engine
from predictor.engine.forward import EagerForward, PaddedForward
from predictor.errors import LoadError
from predictor.families.base import LoadSettings
from predictor.families.v1.family import DeepseekOcrV1Family
from predictor.ocr.hardware import choose_hardware
from predictor.ocr.runtime import engine_config
from tests.engine_rows import TEST_LIMITS


def test_flag_parses_reaches_the_engine_and_refuses_unknown_values():
    settings = settings_from_args(build_parser().parse_args([]))
    assert settings.cuda_graphs == "auto"
    assert engine_config(settings, choose_hardware(settings)).cuda_graphs == "auto"
    assert settings_from_args(build_parser().parse_args(["--cuda_graphs", "off"])).cuda_graphs == "off"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--cuda_graphs", "maybe"])
    assert EngineConfig().cuda_graphs == "off" and not EngineConfig().padded_decode  # tests and benches: eager


def test_decide():
    assert graph_setup.decide("off", "anything") == graph_setup.Decision(False, "off (--cuda_graphs off)")
    on = graph_setup.decide("auto", None, "12 graphs")
    assert on.on and on.reason == "on (auto): 12 graphs"
    off = graph_setup.decide("auto", "device is cpu")
    assert not off.on and "device is cpu" in off.reason and off.reason.startswith("off (auto)")
    with pytest.raises(LoadError, match="--cuda_graphs on: .*self-check .* failed.*--cuda_graphs auto"):
        graph_setup.decide("on", "self-check against eager decode failed: step 0")
    assert graph_setup.decide("on", None).on
    with pytest.raises(ValueError, match="cuda_graphs"):
        graph_setup.decide("yes", None)


def test_compare_accepts_noise_and_ties_and_refuses_wrong_answers():
    torch.manual_seed(0)
    reference = [torch.randn(3, 50) * 5 for _ in range(2)]
    assert graph_setup.compare(reference, [r.clone() for r in reference], 1e-4) == (None, 0.0)
    noisy = [r + 1e-4 * torch.randn_like(r) for r in reference]
    failure, worst = graph_setup.compare(reference, noisy, 2e-2)
    assert failure is None and 0 < worst < 2e-2
    wrong = [r.clone() for r in reference]
    wrong[1][2, 0] += 20.0
    assert "step 1: logits differ" in graph_setup.compare(reference, wrong, 2e-2)[0]
    # tolerance 2e-2 of a scale of 10: logits may move 0.2; a token may change only where the reference's own top
    # two are within 0.2 (a tie at this precision)
    base = torch.zeros(2, 6)
    base[:, 0], base[:, 1] = 10.0, 9.7
    flipped = base.clone()
    flipped[1, 0], flipped[1, 1] = 9.85, 9.86  # within the logit tolerance, but the gap was 0.3: a wrong token
    assert "greedy tokens differ in rows [1]" in graph_setup.compare([base], [flipped], 2e-2)[0]
    tied_base = base.clone()
    tied_base[:, 1] = 9.9
    tied = tied_base.clone()
    tied[1, 0], tied[1, 1] = 9.9, 9.95
    assert graph_setup.compare([tied_base], [tied], 2e-2)[0] is None
    nan = [r.clone() for r in reference]
    nan[0][0, 0] = float("nan")
    assert "not finite" in graph_setup.compare(reference, nan, 2e-2)[0]
    assert "1 steps against 2" in graph_setup.compare(reference, reference[:1], 2e-2)[0]


def test_without_cuda_auto_is_off_and_on_stops_start_up(family):
    engine = Engine(family, "cpu", config=EngineConfig(**{**TEST_LIMITS, "cuda_graphs": "auto"}))
    engine.start()
    try:
        assert engine.worker.graphs == graph_setup.Decision(
            False, "off (auto): device is cpu (CUDA graphs need a CUDA device)")
        assert type(engine.worker.forward) is EagerForward and engine.worker.batch is None  # nothing warmed up
    finally:
        engine.stop()
    refused = Engine(family, "cpu", config=EngineConfig(**{**TEST_LIMITS, "cuda_graphs": "on"}))
    with pytest.raises(LoadError, match="--cuda_graphs on: .*device is cpu"):
        refused.start()
    assert not refused.worker.thread.is_alive()


class _ShiftedPositions(PaddedForward):
    """A subtly wrong forward: the right shape and rows, positions off by one (as a graph reading a stale buffer)."""

    def __call__(self, batch):
        batch.position[:batch.rows] += 1
        try:
            return super().__call__(batch)
        finally:
            batch.position[:batch.rows] -= 1


@pytest.mark.parametrize("which", ["v1", "v2"])
def test_self_check_passes_the_padded_forward_and_catches_a_wrong_one(which, tiny_v1_dir, tiny_v2_family):
    family = tiny_v2_family
    if which == "v1":
        family = DeepseekOcrV1Family()
        family.load(tiny_v1_dir, LoadSettings("cpu", torch.float32, "sdpa", None))
    engine = Engine(family, "cpu", config=EngineConfig(**{**TEST_LIMITS, "max_batch_size": 8}))
    worker = engine.worker
    try:
        outcomes = graph_setup.warm_up(worker)
        assert worker.batch is not None and worker.batch.rows == len(outcomes) == 3
        eager = EagerForward(worker.model, family)
        failure, worst = graph_setup.self_check(worker, outcomes, eager, PaddedForward(worker.model, family, 8))
        assert failure is None and worst <= 1e-5
        assert worker.batch.rows == 0  # the warm-up rows are gone: serving starts from an empty batch
        failure, _ = graph_setup.self_check(worker, outcomes, eager, _ShiftedPositions(worker.model, family, 8))
        assert failure is not None and "step 0" in failure
    finally:
        worker.prefiller.shutdown()  # never started: only its prefill pool ran
