"""Cluster profiles: how they merge, what a cluster run refuses, and that their Beam arguments parse."""
from __future__ import annotations

import re

import pytest
import yaml
from apache_beam.options.pipeline_options import PipelineOptions

from phone2dslr.kubeflow import cluster, runner
from phone2dslr.config import ConfigError
from tests.kubeflow.conftest import OVERRIDES, PROFILES, REPO

DEMO = str(REPO / "configs" / "demo.yaml")


def _beam_blocks(text: str) -> list[list[str]]:
    """Every beam_pipeline_args list in a profile, the active one and the commented alternatives."""
    blocks = [yaml.safe_load(text).get("beam_pipeline_args") or []]
    for match in re.finditer(r"^# beam_pipeline_args:\n((?:#   - .*\n?)+)", text, re.M):
        blocks.append([line.split("- ", 1)[1].split("  #")[0].strip() for line in match.group(1).splitlines()])
    return blocks


@pytest.mark.parametrize("target", sorted(PROFILES))
def test_profile_beam_args_are_known_beam_options(target):
    blocks = _beam_blocks(PROFILES[target].read_text())
    runners = set()
    for args in blocks:
        options = PipelineOptions(args).get_all_options(retain_unknown_options=False)
        # A flag's option name is its dest, except where Beam names them apart (--beam_plugin -> beam_plugins).
        dest = {"beam_plugin": "beam_plugins"}
        unknown = [a for a in args if dest.get(a[2:].split("=")[0], a[2:].split("=")[0]) not in options]
        assert not unknown, f"{target} profile: Beam does not know {unknown}"
        runners.add(options["runner"])
    expected = {"kfp": {"FnApiRunner", "FlinkRunner", "SparkRunner"}, "vertex": {"DataflowRunner"}}[target]
    assert runners == expected


@pytest.mark.parametrize("target", sorted(PROFILES))
def test_profile_lays_over_the_local_config(target):
    config = runner.load_config(DEMO, str(PROFILES[target]))
    profile = yaml.safe_load(PROFILES[target].read_text())
    assert config.kubeflow.target == target
    assert config.beam_pipeline_args == profile["beam_pipeline_args"]  # replaced whole
    assert config.pipeline_root == profile["pipeline_root"]
    assert config.train.strategy == profile["train"]["strategy"]
    assert config.train.model == "dped" and config.data.patch_size == 50  # the rest stays the local config's


def test_set_overrides_come_after_the_profile():
    config = runner.load_config(DEMO, str(PROFILES["kfp"]), ["kubeflow.gpu_count=4", "train.strategy=mirrored"])
    assert config.kubeflow.gpu_count == 4


@pytest.mark.parametrize("overrides, message", [
    (["pipeline_root=runs/root"], "pipeline_root"),
    (["pipeline_root=minio://mlpipeline/v2"], "pipeline_root"),
    (["data.root=demo_data/dped"], "relative"),
    (["data.demo_dir=demo_data"], "demo_dir"),
    (["train.strategy=multi_worker"], "one pod"),
    (["train.strategy=default", "kubeflow.gpu_count=2"], "mirrored"),
    (["kubeflow.target=vertex", "pipeline_root=s3://bucket/root"], "gs://"),
    (["kubeflow.node_selector=[1]"], "mapping"),
])
def test_cluster_settings_that_cannot_run_fail_at_compile(overrides, message):
    with pytest.raises(ConfigError, match=message):
        runner.load_config(DEMO, str(PROFILES["kfp"]), OVERRIDES + overrides)


def test_vertex_needs_a_project():
    with pytest.raises(ConfigError, match="project"):
        runner.load_config(DEMO, str(PROFILES["vertex"]), OVERRIDES + ["kubeflow.project=''"])


def test_missing_profile_is_one_line():
    with pytest.raises(ConfigError, match="cluster profile not found"):
        cluster.profile_overrides("configs/nope.yaml")
