"""The application builder's arguments: the command line's option names and converters, unknown names refused."""

from __future__ import annotations

import pytest

from predictor.errors import ConfigError
from predictor.ray_serve.options import ONGOING_HEADROOM, deployment_options, parse_builder_args


def test_string_arguments_from_serve_run_mean_what_the_flags_mean(tiny_v2_dir):
    settings, options = parse_builder_args({"model_dir": tiny_v2_dir, "max_batch_size": "4", "max_queue": "10",
                                            "served_model_names": "a,b", "allow_remote_images": "false",
                                            "request_timeout": "30", "max_replicas": "3", "num_gpus": "0"})
    assert (settings.max_batch_size, settings.max_queue, settings.served_model_names) == (4, 10, ["a", "b"])
    assert settings.request_timeout == 30.0 and options.max_replicas == 3 and options.num_gpus == 0
    deploy = deployment_options(settings, options)
    assert deploy["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 3, "target_ongoing_requests": 3.2}
    assert deploy["max_ongoing_requests"] == 4 + 10 + ONGOING_HEADROOM
    assert deploy["ray_actor_options"] == {"num_cpus": 1.0, "num_gpus": 0}
    assert deploy["graceful_shutdown_timeout_s"] == 30.0


def test_typed_yaml_values_and_gpu_defaults():
    settings, options = parse_builder_args({"model_id": "org/model", "device": "cuda", "served_model_names": ["x"],
                                            "max_batch_size": 8, "target_ongoing_requests": 5}, check_host=False)
    assert settings.device == "cuda" and settings.served_model_names == ["x"]  # no CUDA here: checked per replica
    deploy = deployment_options(settings, options)
    assert deploy["ray_actor_options"]["num_gpus"] == 1.0
    assert deploy["autoscaling_config"]["target_ongoing_requests"] == 5
    auto, _ = parse_builder_args({"model_id": "org/model"}, check_host=False)
    assert deployment_options(auto, options, cluster_gpus=0)["ray_actor_options"]["num_gpus"] == 0
    assert deployment_options(auto, options, cluster_gpus=4)["ray_actor_options"]["num_gpus"] == 1.0


@pytest.mark.parametrize("args, message", [
    ({"max_batch_sise": 4}, "unknown argument(s) max_batch_sise"),
    ({"max_batch_size": "many"}, "--max_batch_size"),
    ({"max_batch_size": 0}, "--max_batch_size must be at least 1"),
    ({"min_replicas": 3, "max_replicas": 2}, "--min_replicas"),
    ({"target_ongoing_requests": 0}, "--target_ongoing_requests must be positive"),
    ({"device": "tpu"}, "--device"),
    ({"model_dir": "/nowhere", "model_id": "org/model"}, "not both"),
])
def test_bad_arguments_are_refused_by_name(args, message):
    with pytest.raises(ConfigError) as exc:
        parse_builder_args(args, check_host=False)
    assert message in str(exc.value)


def test_the_builder_returns_a_serve_application(tiny_v2_dir):
    from ray.serve import Application

    from predictor.ray_serve import build

    app = build({"model_dir": tiny_v2_dir, "device": "cpu", "max_replicas": 2})
    assert isinstance(app, Application)
    with pytest.raises(ConfigError, match="unknown argument"):
        build({"model_dir": tiny_v2_dir, "max_replica": 2})


def test_the_image_installs_the_same_ray_as_the_extra():
    """One image serves both variants: requirements-serve.txt pins the [ray] extra's ray[serve]."""
    import configparser
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    cfg = configparser.ConfigParser()
    cfg.read(root / "setup.cfg")
    extra = [line.strip() for line in cfg["options.extras_require"]["ray"].splitlines() if line.strip()]
    assert extra == ["ray[serve]==2.60.0"]
    image = [line.strip() for line in (root / "requirements-serve.txt").read_text().splitlines()
             if line.strip().startswith("ray")]
    assert image == extra
    import ray

    assert ray.__version__ == "2.60.0"
