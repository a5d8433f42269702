"""TrainConfig checks every field when it is built, before any data is read or model built."""
import dataclasses

import pytest

from petlib.losses import LOSSES
from petlib.models import MODELS
from petlib.training.config import COMPILE_MODES, OPTIMIZERS, SCHEDULERS, TrainConfig, recipe


def test_defaults_and_every_recipe_are_valid():
    TrainConfig()
    for name in ("lab", "smp", "petlib"):
        recipe(name)


@pytest.mark.parametrize("field, value, valid", [
    ("model", "unet2", list(MODELS)),
    ("optimizer", "sgd", list(OPTIMIZERS)),
    ("scheduler", "cosin", list(SCHEDULERS)),
    ("loss", "dcie", list(LOSSES)),
    ("amp", "yes", ["auto", "on", "off"]),
    ("channels_last", True, ["auto", "on", "off"]),
    ("fused_optimizer", "of", ["auto", "on", "off"]),
    ("compile_mode", "fast", list(COMPILE_MODES)),
])
def test_an_unknown_choice_names_the_field_the_value_and_the_valid_ones(field, value, valid):
    # data_path points nowhere: the error must come from the config, not from reading data.
    with pytest.raises(ValueError) as err:
        TrainConfig(**{field: value, "data_path": "nowhere"})
    message = str(err.value)
    assert f"{field}={value!r}" in message
    assert all(choice in message for choice in valid), message


@pytest.mark.parametrize("field, value", [
    ("epochs", 0), ("epochs", 2.5), ("epochs", True), ("batch_size", 0), ("image_size", 0),
    ("lr", 0.0), ("lr", -1e-3), ("lr", float("nan")), ("weight_decay", -0.1), ("warmup_epochs", -1),
    ("min_lr", -1.0), ("grad_clip", 0.0), ("crop_scale_min", 0.0), ("crop_scale_max", 0.5), ("rotation", -5),
    ("rotation", 200), ("color_jitter", 1.0), ("color_jitter", -0.1), ("subset", 0), ("eval_batch_size", 0),
    ("num_workers", -1), ("cache", "ram"), ("cache", 1), ("augment", "yes"), ("tta", 1), ("compile", None),
    ("model_kwargs", "base_channels=8"), ("run_name", "a/b"), ("run_name", ""), ("device", "gpu"),
    ("data_path", ""), ("seed", 1.5),
])
def test_a_value_out_of_range_names_the_field_and_the_value(field, value):
    with pytest.raises(ValueError, match=f"TrainConfig.{field}="):
        TrainConfig(**{field: value})


@pytest.mark.parametrize("field, value", [
    ("lr", None), ("grad_clip", None), ("subset", None), ("eval_batch_size", None), ("num_workers", None),
    ("num_workers", 0), ("image_size", 17), ("crop_scale_max", 1.3), ("cache", "disk"), ("cache", False),
    ("cache", "memory"), ("warmup_epochs", 0), ("weight_decay", 0), ("device", "cpu"), ("device", "cuda:1"),
    ("rotation", 0), ("color_jitter", 0),
])
def test_edge_values_that_mean_something_are_accepted(field, value):
    assert getattr(TrainConfig(**{field: value}), field) == value


def test_replace_checks_again():
    with pytest.raises(ValueError, match="epochs"):
        dataclasses.replace(TrainConfig(), epochs=0)


def test_who_validates():
    # petlib's recipe trains on every trainval image and keeps its last epoch (README, "How the
    # recipe is chosen"); the lab's and smp's keep their best validated epoch, as their authors do,
    # and the sample runs behind the notebooks validate to draw their curves.
    from petlib.training.config import SAMPLE_SETTINGS, sample_config

    assert TrainConfig().validate is False and recipe("petlib").validate is False
    assert recipe("lab").validate is True and recipe("smp").validate is True
    assert all(settings["validate"] is True for settings in SAMPLE_SETTINGS.values())
    assert sample_config("unet", "somewhere").validate is True


def test_the_batch_size_defaults_per_network_and_an_explicit_one_is_kept():
    from petlib.training.config import DEFAULT_BATCH_SIZE

    assert DEFAULT_BATCH_SIZE == {"unet": 8, "resnet34_unet": 16}
    assert TrainConfig(model="unet").batch_size == 8 and TrainConfig(model="resnet34_unet").batch_size == 16
    assert TrainConfig(model="unet", batch_size=16).batch_size == 16
    resolved = TrainConfig(model="unet")
    assert TrainConfig.from_dict(resolved.to_dict()).batch_size == 8  # checkpoints record the batch they used
    assert recipe("lab", model="unet").batch_size == recipe("smp", model="unet").batch_size == 16  # theirs, not ours
