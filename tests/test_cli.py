"""The ``lightning_depth`` command: shipped configs, composition, errors, synth, a short fit."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch import LightningDataModule

from lightning_depth.callbacks import CompileNetwork
from lightning_depth.cli import main
from lightning_depth.config import DepthCLI, build_cli
from lightning_depth.tasks.base import DepthTask

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
EXPERIMENTS = [
    *sorted((CONFIGS / "mono").glob("*.yaml")),
    *sorted((CONFIGS / "stereo").glob("*.yaml")),
    *sorted((CONFIGS / "pretrain").glob("*.yaml")),
]
# overlays compose after a demo (`--config demo/mono.yaml --config demo/mono_faithful.yaml`)
OVERLAYS = {"mono_faithful.yaml"}
DEMOS = sorted(p for p in (CONFIGS / "demo").glob("*.yaml") if p.name not in OVERLAYS)


def _build(*args: str) -> DepthCLI:
    return build_cli(args, run=False)


def _build_configs(tmp_path: Path, *configs: Path) -> DepthCLI:
    """The CLI of ``configs`` composed in order, without a logger, writing under ``tmp_path``."""
    args = [arg for config in configs for arg in ("--config", str(config))]
    return _build(*args, "--trainer.logger=false", f"--trainer.default_root_dir={tmp_path}")


def _printed_config(capsys, *args: str) -> dict:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *args, "--print_config"])
    assert exit_info.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


def _count(module: torch.nn.Module) -> int:
    params = sum(p.numel() for p in module.parameters())
    stats = sum(
        b.numel() for n, b in module.named_buffers() if n.endswith(("running_mean", "running_var"))
    )
    return params + stats


@pytest.mark.parametrize("config", EXPERIMENTS + DEMOS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_config_builds(config: Path, tmp_path: Path) -> None:
    cli = _build_configs(tmp_path, config)
    assert isinstance(cli.model, DepthTask)
    assert isinstance(cli.datamodule, LightningDataModule)


def test_faithful_demo_overlay_restores_the_original(tmp_path: Path) -> None:
    cli = _build_configs(
        tmp_path, CONFIGS / "demo" / "mono.yaml", CONFIGS / "demo" / "mono_faithful.yaml"
    )
    assert cli.model.net.head_type == "tanh"
    loss = cli.model.loss_fn
    assert (loss.data_range, loss.smoothness, loss.use_mask) == (256.0, "faithful", False)
    # same data and budget as the main demo
    assert cli.datamodule.size == (64, 64)


def test_corrected_configs_use_the_log_depth_range(tmp_path: Path) -> None:
    for config in (CONFIGS / "demo" / "mono.yaml", CONFIGS / "mono" / "diode_414_corrected.yaml"):
        cli = _build("--config", str(config), "--trainer.logger=false")
        assert cli.model.loss_fn.data_range == pytest.approx(np.log(300.0)), config.name
        assert cli.model.data_range == pytest.approx(np.log(300.0)), config.name


@pytest.mark.parametrize(
    ("name", "count"),
    [("diode_414.yaml", 1_966_465), ("diode_313.yaml", 489_089), ("diode_313_swish.yaml", 489_089)],
)
def test_mono_configs_have_the_paper_parameter_counts(name: str, count: int) -> None:
    cli = _build("--config", str(CONFIGS / "mono" / name), "--trainer.logger=false")
    assert _count(cli.model.net) == count


def test_compile_config_adds_the_callback_after_the_experiments_own(tmp_path: Path) -> None:
    cli = _build_configs(
        tmp_path,
        CONFIGS / "stereo" / "things_spn_on_frozen_stages.yaml",
        CONFIGS / "trainer" / "compile.yaml",
    )
    names = [type(c).__name__ for c in cli.trainer.callbacks]
    assert names.index("InitWeights") < names.index("FreezeWeights") < names.index("CompileNetwork")
    (compile_callback,) = [c for c in cli.trainer.callbacks if isinstance(c, CompileNetwork)]
    assert compile_callback.options == {
        "mode": None,
        "backend": "inductor",
        "fullgraph": False,
        "dynamic": False,
    }
    assert compile_callback.stages == ["fit"]


@pytest.mark.parametrize(
    "trainer_config, precision, devices",
    [
        ("cpu.yaml", "32-true", 1),
        ("gtx1070.yaml", "16-mixed", 1),
        ("v100.yaml", "16-mixed", 1),
        ("v100x4_ddp.yaml", "16-mixed", 4),
        ("multinode.yaml", "16-mixed", 4),
        ("bf16.yaml", "bf16-mixed", 1),
    ],
)
def test_trainer_configs_compose(capsys, trainer_config: str, precision: str, devices: int) -> None:
    config = _printed_config(
        capsys,
        "--config",
        str(CONFIGS / "mono" / "diode_414.yaml"),
        "--config",
        str(CONFIGS / "trainer" / trainer_config),
    )
    assert config["trainer"]["precision"] == precision
    assert config["trainer"]["devices"] == devices
    # the experiment's own settings survive the composition
    assert config["model"]["init_args"]["net"]["init_args"]["depth"] == 4
    assert config["trainer"]["max_epochs"] == 30


def test_logger_config_composes(capsys) -> None:
    config = _printed_config(
        capsys,
        "--config",
        str(CONFIGS / "mono" / "diode_313.yaml"),
        "--config",
        str(CONFIGS / "logger" / "wandb.yaml"),
    )
    assert config["trainer"]["logger"]["class_path"].endswith("WandbLogger")
    assert config["trainer"]["logger"]["init_args"]["project"] == "lightning_depth"


def test_mistyped_key_is_a_clear_error(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "fit",
                "--config",
                str(CONFIGS / "mono" / "diode_414.yaml"),
                "--model.init_args.nett",
                "x",
            ]
        )
    assert exit_info.value.code != 0
    assert "nett" in capsys.readouterr().err


def test_synth_diode_writes_the_real_layout(tmp_path: Path) -> None:
    assert (
        main(
            ["synth", "diode", "--out", str(tmp_path), "--n", "3", "--size", "48x64", "--seed", "1"]
        )
        == 0
    )
    images = sorted(tmp_path.glob("val/*/scene_*/scan_*/*.png"))
    assert len(images) == 3
    depth = np.load(str(images[0]).replace(".png", "_depth.npy"))
    mask = np.load(str(images[0]).replace(".png", "_depth_mask.npy"))
    assert depth.shape == (48, 64, 1) and depth.dtype == np.float32
    assert mask.shape == (48, 64)


def test_synth_rejects_a_bad_size(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["synth", "diode", "--out", str(tmp_path), "--size", "64by48"])
    assert "HxW" in capsys.readouterr().err


@pytest.mark.slow
def test_fit_validate_test_predict_through_the_cli(tmp_path: Path, capsys) -> None:
    common = [
        "--config",
        str(CONFIGS / "demo" / "mono.yaml"),
        f"--data.init_args.synth_dir={tmp_path / 'data'}",
        "--data.init_args.synth_samples=20",
        "--data.init_args.synth_size=[48, 64]",
        "--data.init_args.size=[32, 32]",
        "--data.init_args.batch_size=4",
        "--model.init_args.net.init_args.depth=3",
        f"--trainer.default_root_dir={tmp_path / 'run'}",
        f"--trainer.logger.init_args.save_dir={tmp_path / 'run'}",
    ]
    main(
        [
            "fit",
            *common,
            "--trainer.max_epochs=2",
            "--trainer.enable_progress_bar=false",
            f"--trainer.callbacks.init_args.figure_path={tmp_path / 'figure.png'}",
        ]
    )
    out = capsys.readouterr().out
    result = re.search(r"^RESULT (.*)$", out, re.M)
    assert result, out[-2000:]
    values = dict(kv.split("=") for kv in result.group(1).split())
    assert set(values) >= {
        "val_ssim_before",
        "val_ssim_after",
        "val_absrel_before",
        "val_absrel_after",
        "seconds",
    }
    # the run summary's line: the report's numbers, then the checkpoints written
    assert Path(values["best_ckpt"]).is_file() and Path(values["last_ckpt"]).is_file()
    assert all(np.isfinite(float(v)) for k, v in values.items() if not k.endswith("ckpt"))
    assert (tmp_path / "figure.png").stat().st_size > 1000
    last = next((tmp_path / "run").rglob("last.ckpt"))
    checkpoint = torch.load(last, map_location="cpu", weights_only=False)
    assert checkpoint["epoch"] == 1
    # the checkpoint rebuilds the network from the stored config
    from lightning_depth import MonoDepthModule

    restored = MonoDepthModule.load_from_checkpoint(last)
    assert _count(restored.net) == 489_089  # depth 3, as configured
    for command in ("validate", "test", "predict"):
        main([command, *common, f"--ckpt_path={last}"])


def test_default_callbacks_are_visible_and_overridable(capsys) -> None:
    """The default callbacks are plain config: --print_config shows them, a config's list
    replaces them and ``callbacks+`` adds to them."""
    defaults = _printed_config(capsys, "--config", str(CONFIGS / "mono" / "diode_414.yaml"))
    names = [c["class_path"].rsplit(".", 1)[1] for c in defaults["trainer"]["callbacks"]]
    assert names == [
        "BestCheckpoint",
        "LatestCheckpoint",
        "LearningRateMonitor",
        "PredictionPanels",
        "CheckpointOnSigterm",
    ]
    demo = _printed_config(capsys, "--config", str(CONFIGS / "demo" / "mono.yaml"))
    assert [c["class_path"].rsplit(".", 1)[1] for c in demo["trainer"]["callbacks"]] == [
        *names,
        "LearningReport",
    ]
    replaced = _printed_config(
        capsys,
        "--config",
        str(CONFIGS / "mono" / "diode_414.yaml"),
        "--trainer.callbacks=[{class_path: lightning.pytorch.callbacks.ModelCheckpoint}]",
    )
    assert [c["class_path"] for c in replaced["trainer"]["callbacks"]] == [
        "lightning.pytorch.callbacks.ModelCheckpoint"
    ]


def _tiny_mono_fit(tmp_path: Path, *extra: str) -> DepthCLI:
    from tests.helpers import demo_data_args

    return build_cli(
        [
            "fit",
            *demo_data_args("mono", tmp_path / "data"),
            "--model.init_args.net.init_args.depth=2",
            "--trainer.max_epochs=2",
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
            f"--trainer.default_root_dir={tmp_path / 'run'}",
            f"--trainer.logger.init_args.save_dir={tmp_path / 'run'}",
            *extra,
        ]
    )


def test_a_users_model_checkpoint_is_used(tmp_path: Path) -> None:
    """A ModelCheckpoint given on the command line saves where and on what the user said
    (Lightning used to replace it silently by the task's own checkpoints)."""
    mine = tmp_path / "my_checkpoints"
    cli = _tiny_mono_fit(
        tmp_path,
        "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
        f"--trainer.callbacks.dirpath={mine}",
        "--trainer.callbacks.monitor=val/abs_rel",
        "--trainer.callbacks.mode=min",
        "--trainer.callbacks.filename=mine-{epoch}",
    )
    checkpoints = [c for c in cli.trainer.callbacks if type(c).__name__ == "ModelCheckpoint"]
    assert len(checkpoints) == 1
    user = checkpoints[0]
    assert user.dirpath == str(mine) and user.monitor == "val/abs_rel"
    files = sorted(p.name for p in mine.glob("*.ckpt"))
    assert len(files) == 1 and files[0].startswith("mine-epoch=")
    # it kept the epoch with the lowest logged val/abs_rel
    scores = [float(v) for v in _logged(tmp_path / "run", "val/abs_rel")]
    assert float(user.best_model_score) == pytest.approx(min(scores), rel=1e-6)
    # the default best checkpoint watched the task's own metric, in its direction
    best = next(c for c in cli.trainer.callbacks if type(c).__name__ == "BestCheckpoint")
    assert (best.monitor, best.mode) == ("val/ssim", "max")
    assert float(best.best_model_score) == pytest.approx(
        max(float(v) for v in _logged(tmp_path / "run", "val/ssim")), rel=1e-6
    )


def test_a_users_callback_list_replaces_the_defaults(tmp_path: Path) -> None:
    mine = tmp_path / "only"
    cli = _tiny_mono_fit(
        tmp_path,
        "--trainer.callbacks=[{class_path: lightning.pytorch.callbacks.ModelCheckpoint, "
        f"init_args: {{dirpath: {mine}, monitor: val/abs_rel}}}}]",
    )
    kinds = {type(c).__name__ for c in cli.trainer.callbacks}
    assert "BestCheckpoint" not in kinds and "LatestCheckpoint" not in kinds
    assert len(list(mine.glob("*.ckpt"))) == 1


def _logged(root: Path, key: str) -> list[str]:
    """Values of ``key`` in the CSV logger's metrics.csv under ``root``."""
    import csv

    rows = list(csv.DictReader(next(root.rglob("metrics.csv")).open()))
    return [row[key] for row in rows if row.get(key)]


def test_ckpt_path_last_rebuilds_the_model_from_the_checkpoint(tmp_path: Path) -> None:
    """``--ckpt_path last`` is resolved before the model is built, so the model comes from the
    checkpoint's settings as with a file path: a run trained with a linear head, evaluated
    through a config whose model has a tanh head, evaluates the linear head it trained."""
    _tiny_mono_fit(tmp_path, "--trainer.max_epochs=1")  # demo: head linear
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert last.exists()
    from tests.helpers import demo_data_args

    cli = build_cli(
        [
            "validate",
            *demo_data_args("mono", tmp_path / "data"),
            f"--model={CONFIGS / 'model' / 'mono_313.yaml'}",  # depth 3, tanh head
            f"--trainer.default_root_dir={tmp_path / 'run'}",
            "--trainer.logger=false",
            "--trainer.enable_progress_bar=false",
            "--ckpt_path=last",
        ]
    )
    assert cli.config["validate"]["ckpt_path"] == str(last)
    assert cli.model.net.head_type == "linear" and cli.model.net.depth == 2


def test_predict_with_an_exported_file_skips_lightningcli(tmp_path: Path, monkeypatch) -> None:
    """``predict --model X.onnx|X.pt`` goes to the exported-file predictor (no config, no
    checkpoint); ``--model`` naming a class or config stays LightningCLI's."""
    from lightning_depth import cli
    from lightning_depth.deploy import predict_command

    calls = []
    monkeypatch.setattr(predict_command, "main", lambda argv: calls.append(list(argv)) or 0)
    for args in (["--model", "m.onnx", "--inputs", "x"], ["--inputs", "x", "--model=m.pt"]):
        assert main(["predict", *args]) == 0
        assert calls[-1] == args
    assert len(calls) == 2
    for args in (["--model", "configs/model/mono_414.yaml"], ["--model.init_args.net=x.pt"]):
        assert not cli._predicts_from_exported_file(args)
