"""The ablation config file: the shipped configs, and errors that name the file and key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lightning_depth.ablation import Variant, load_ablation_config
from tests.ablation.checks import CONFIGS, MONO, STEREO


def test_shipped_configs_load_with_the_paper_variants() -> None:
    mono = load_ablation_config(MONO)
    assert mono.task == "mono"
    assert [v.name for v in mono.variants] == ["4-1-4 LeakyReLU", "3-1-3 LeakyReLU", "3-1-3 Swish"]
    assert [Path(v.model).name for v in mono.variants] == [
        "mono_414.yaml",
        "mono_313.yaml",
        "mono_313_swish.yaml",
    ]
    assert mono.variants[2].info == {"structure": "3-1-3", "activation": "Swish"}
    assert mono.base[0] == str((CONFIGS / "demo" / "mono.yaml").resolve())
    assert json.loads(mono.base[1]) == {"trainer": {"max_epochs": 4}}  # the demo budget
    stereo = load_ablation_config(STEREO)
    assert stereo.task == "stereo"
    assert [Path(v.model).name for v in stereo.variants] == [
        f"anynet_spn{c}.yaml" for c in (0, 1, 2, 4, 8)
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", "must be a mapping"),
        ("task: mono\nvariants: []", "non-empty list"),
        ("task: [mono]\nvariants: [{name: a, args: [--x=1]}]", "task must be a task name"),
        ("task: mono\nvariants: [{name: a}]", "needs a 'model' config or 'args'"),
        ("task: mono\nvariants: [{name: a, model: nope.yaml}]", "'nope.yaml' not found"),
        ("task: mono\nbase: [gone.yaml]\nvariants: [{name: a, args: [--x=1]}]", "base config"),
        ("task: mono\nvariantz: []", "unknown keys ['variantz']"),
        (
            "task: mono\nvariants: [{name: A b, args: [--x=1]}, {name: a-B, args: [--x=2]}]",
            "names must differ",
        ),
        ("task: mono\ncheckpoint: first\nvariants: [{name: a, args: [--x=1]}]", "'last' or 'best'"),
        ("wandb: [x]\nvariants: [{name: a, args: [--x=1]}]", "wandb must be a mapping"),
        ("report: {samples: -1}\nvariants: [{name: a, args: [--x=1]}]", "report.samples"),
        ("seeds: [1, 1]\nvariants: [{name: a, args: [--x=1]}]", "distinct integers"),
        ("seeds: [1, x]\nvariants: [{name: a, args: [--x=1]}]", "distinct integers"),
        ("also_test: {a: 1}\nvariants: [{name: a, args: [--x=1]}]", "also_test must be a list"),
        ("also_test: [{name: m}]\nvariants: [{name: a, args: [--x=1]}]", "'name' and 'data'"),
        (
            "also_test: [{name: m, data: gone.yaml}]\nvariants: [{name: a, args: [--x=1]}]",
            "also_test 'm' data 'gone.yaml' not found",
        ),
        (
            "also_test: [{name: m, data: d.yaml, root: x}]\nvariants: [{name: a, args: [--x=1]}]",
            "unknown keys ['root']",
        ),
        (
            "also_test: [{name: m, data: d.yaml}, {name: m, data: d.yaml}]\n"
            "variants: [{name: a, args: [--x=1]}]",
            "names must differ",
        ),
    ],
)
def test_bad_config_errors_name_the_file_and_problem(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    (tmp_path / "d.yaml").write_text("class_path: x.Y\n")
    with pytest.raises((ValueError, FileNotFoundError)) as info:
        load_ablation_config(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_task_is_optional(tmp_path: Path) -> None:
    path = tmp_path / "any.yaml"
    path.write_text("variants: [{name: a, args: [--x=1]}]")
    config = load_ablation_config(path)
    assert config.task is None and config.name == "any" and config.checkpoint == "last"


def test_missing_config_is_reported(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_ablation_config(tmp_path / "missing.yaml")


def test_variant_slug_is_a_folder_name() -> None:
    assert Variant(name="4-1-4 LeakyReLU", args=["--x=1"]).slug == "4_1_4_leakyrelu"
    assert Variant(name="AnyNet SPN-8", args=["--x=1"]).slug == "anynet_spn_8"


def test_shipped_seeded_ablations_on_generated_data() -> None:
    stereo = load_ablation_config(CONFIGS / "ablation" / "stereo_things.yaml")
    assert stereo.seeds == [0, 1, 2]
    assert [(t.name, Path(t.data).name, t.init_args) for t in stereo.also_test] == [
        ("Motorcycle", "middlebury.yaml", {"root": None})
    ]
    assert [v.args for v in stereo.variants] == [
        [f"--model.init_args.net.init_args.spn_channels={c}"] for c in (0, 1, 2, 4, 8)
    ]
    mono = load_ablation_config(CONFIGS / "ablation" / "mono_photo.yaml")
    assert mono.seeds == [0, 1, 2] and mono.also_test == []
    assert mono.base[0] == str((CONFIGS / "pretrain" / "mono_313.yaml").resolve())
    # A config without seeds runs once with the base config's seed.
    assert load_ablation_config(MONO).seeds == []
