"""The YAML config: every shipped file loads, and mistakes are one-line errors, not defaults."""
import glob
from pathlib import Path

import pytest

from phone2dslr import config as config_lib


@pytest.mark.parametrize("path", sorted(glob.glob("configs/*.yaml")))
def test_shipped_configs_load(path):
    cfg = config_lib.load(path)
    assert cfg.data.patch_size > 0
    assert cfg.train.model in ("dped", "wespe")


def test_defaults_round_trip_through_plain_data():
    cfg = config_lib.from_dict({"train": {"content": "pixel"}})
    again = config_lib.from_dict(config_lib.to_dict(cfg))
    assert again == cfg
    assert config_lib.section_from_dict(config_lib.TrainConfig, config_lib.to_dict(cfg.train)) == cfg.train


@pytest.mark.parametrize("raw, message", [
    ({"trian": {}}, "unknown key(s) trian"),
    ({"train": {"content": "pixel", "batch_sise": 3}}, "train: unknown key(s) batch_sise"),
    ({"train": {"content": "pixel", "batch_size": "8"}}, "train.batch_size: expected int"),
    ({"train": {"content": "pixel", "batch_size": True}}, "train.batch_size: expected int"),
    ({"train": {"content": "pixel", "model": "cyclegan"}}, "train.model: 'cyclegan' is not one of"),
    ({"train": {"content": "vgg19"}}, "train.vgg_weights"),
    ({"train": {"content": "pixel"}, "data": {"eval_percent": 100}}, "data.eval_percent"),
    ({"train": {"content": "pixel"}, "data": {"patch_size": 0}}, "data.patch_size"),
    ({"train": {"content": "pixel", "learning_rate": -1}}, "train.learning_rate"),
    ({"train": {"content": "pixel", "recipe": "best"}}, "train.recipe"),
])
def test_bad_values_are_clear_errors(raw, message):
    with pytest.raises(config_lib.ConfigError) as e:
        config_lib.from_dict(raw)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_ints_are_accepted_where_floats_are_expected():
    cfg = config_lib.from_dict({"train": {"content": "pixel", "learning_rate": 1}})
    assert cfg.train.learning_rate == 1.0 and isinstance(cfg.train.learning_rate, float)


def test_yaml_exponents_without_a_dot_are_floats(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  content: pixel\n  learning_rate: 2e-4\n")  # YAML 1.1 reads a string
    assert config_lib.load(path).train.learning_rate == 2e-4
    assert config_lib.load(path, ["train.learning_rate=5e-5"]).train.learning_rate == 5e-5
    with pytest.raises(config_lib.ConfigError, match="train.learning_rate: expected float, got 'fast'"):
        config_lib.load(path, ["train.learning_rate=fast"])


def test_file_errors_and_overrides(tmp_path):
    with pytest.raises(config_lib.ConfigError, match="not found"):
        config_lib.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(config_lib.ConfigError, match="not valid YAML"):
        config_lib.load(bad)
    good = tmp_path / "good.yaml"
    good.write_text("train:\n  content: pixel\n")
    cfg = config_lib.load(good, ["train.model=wespe", "data.patch_size=32"])
    assert cfg.train.model == "wespe" and cfg.data.patch_size == 32
    with pytest.raises(config_lib.ConfigError, match="section.key=value"):
        config_lib.load(good, ["train.model"])


def test_cli_turns_project_errors_into_one_line(capsys, tmp_path):
    from phone2dslr import cli

    assert cli.main(["demo-data", "--out", str(tmp_path / "d"), "--phone", "canon"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "canon" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {content: pixel, modle: dped}\n")
    assert cli.main(["run", "--config", str(bad)]) == 2
    assert "unknown key(s) modle" in capsys.readouterr().err


def test_removed_loss_preset_points_to_the_recipe():
    with pytest.raises(config_lib.ConfigError, match="replaced by train.recipe"):
        config_lib.from_dict({"train": {"content": "pixel", "loss_preset": "paper"}})


def test_cli_checks_the_recipe_before_any_work(capsys, tmp_path, monkeypatch):
    from phone2dslr import cli

    monkeypatch.chdir(tmp_path)
    demo = str(Path(__file__).resolve().parents[2] / "configs" / "demo.yaml")
    assert cli.main(["run", "--config", demo, "--set", "train.loss_weights.content=-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("config error: train.loss_weights") and "\n" not in err
    assert not (tmp_path / "demo_data").exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("recursive", [False, True])
def test_data_options_reach_the_example_gen(recursive, tmp_path):
    """Config -> pipeline -> component: an option that stops at the config does nothing."""
    from phone2dslr.pipeline.pipeline import create_components

    cfg = config_lib.load("configs/demo.yaml", [f"data.recursive={str(recursive).lower()}", "data.demo_dir=''",
                                                f"pipeline_root={tmp_path}/root"])
    gen = create_components(cfg, until="ImageExampleGen")[0]
    assert gen.exec_properties["recursive"] == int(recursive)
    assert gen.exec_properties["seed"] == cfg.data.seed and gen.exec_properties["phone"] == cfg.data.phone
