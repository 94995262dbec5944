"""What the ``lightning_depth`` command prints: the command list, a quiet stderr, the
end-of-run summary with its one ``RESULT`` line, and one-line errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest
import torch

from lightning_depth import cli
from lightning_depth.cli import TOOLS, main

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lightning_depth", *args],
        cwd=REPO,
        env=env or ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _synth(root: Path, n: int = 12) -> Path:
    assert main(["synth", "diode", "--out", str(root), "--n", str(n), "--size", "48x64"]) == 0
    return root


def _result(out: str) -> dict[str, str]:
    lines = re.findall(r"^RESULT (.*)$", out, re.M)
    assert len(lines) == 1, out[-3000:]
    return dict(kv.split("=") for kv in lines[0].split())


# -- the command list -------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_every_command_with_one_line(flag: str, capsys, monkeypatch) -> None:
    # a tool added to TOOLS is listed too, described by its function's docstring
    monkeypatch.setitem(TOOLS, "probe-tool", "tests.test_cli_output:_probe_tool")
    assert main([flag]) == 0
    out = capsys.readouterr().out
    listed = dict(re.findall(r"^  (\S+) +(.+)$", out, re.M))
    assert set(listed) == {*LIGHTNING_COMMANDS, *TOOLS}
    assert all(listed.values())
    assert listed["probe-tool"] == "probe the command list"
    assert "lightning_depth <command> --help" in out


def _probe_tool(argv: list[str]) -> int:
    """Probe the command list. More text that the list does not show."""
    return 0


def test_no_arguments_lists_the_commands_and_fails(capsys) -> None:
    assert main([]) == 2
    assert "synth" in capsys.readouterr().err


def test_a_commands_help_is_still_lightningclis(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--trainer.max_epochs" in out and "--print_config" in out


# -- a quiet run and its summary --------------------------------------------------------------


def test_a_shipped_config_runs_quietly_with_one_summary(tmp_path: Path) -> None:
    """``configs/data/diode.yaml`` on CPU: no warning about the LightningCLI ``args``, the
    litlogger tip, DataLoader workers or pinned memory; one RESULT line naming files that
    exist."""
    root = _synth(tmp_path / "diode")
    run = tmp_path / "run"
    done = _run(
        "fit", "--config", "configs/mono/diode_414.yaml", "--config", "configs/trainer/cpu.yaml",
        "--config", "configs/logger/csv.yaml", f"--trainer.logger.init_args.save_dir={run}",
        f"--data.init_args.root={root}", "--data.init_args.size=[32, 32]",
        "--data.init_args.batch_size=4", "--model.init_args.net.init_args.depth=2",
        "--trainer.max_epochs=1", f"--trainer.default_root_dir={run}",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    for noise in ("args parameter", "litlogger", "Tip:", "num_workers", "worker", "pin_memory"):
        assert noise not in done.stderr, done.stderr
    result = _result(done.stdout)
    assert {"best_val_ssim", "val_ssim", "val_abs_rel", "seconds"} <= set(result)
    assert Path(unquote(result["best_ckpt"])).is_file()
    assert Path(unquote(result["last_ckpt"])).name == "last.ckpt"
    assert "last checkpoint: " in done.stdout and "validation: " in done.stdout


@pytest.mark.slow
def test_the_summary_reports_the_checkpoints_and_metrics_of_each_command(
    tmp_path: Path, capsys
) -> None:
    root = _synth(tmp_path / "diode")
    run = tmp_path / "run"
    common = [
        "--config", "configs/demo/mono.yaml", f"--data.init_args.root={root}",
        "--data.init_args.size=[32, 32]", "--model.init_args.net.init_args.depth=2",
        f"--trainer.default_root_dir={run}", f"--trainer.logger.init_args.save_dir={run}",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
    ]  # fmt: skip
    capsys.readouterr()
    main(["fit", *common, "--trainer.max_epochs=2", "--trainer.callbacks.init_args.figure=false"])
    out = capsys.readouterr().out
    fit = _result(out)
    # the demo report's values and the summary's share the one line
    for key in ("val_ssim_before", "val_ssim_after", "val_absrel_before", "val_absrel_after"):
        assert key in fit
    best = torch.load(fit["best_ckpt"], map_location="cpu", weights_only=False)
    assert best["epoch"] in (0, 1)
    state = next(v for k, v in best["callbacks"].items() if k.startswith("BestCheckpoint"))
    assert float(fit["best_val_ssim"]) == pytest.approx(float(state["best_model_score"]), abs=1e-4)
    last = torch.load(fit["last_ckpt"], map_location="cpu", weights_only=False)
    assert last["epoch"] == 1
    # after training the weights are the last epoch's, which the report evaluated again
    assert float(fit["val_ssim"]) == pytest.approx(float(fit["val_ssim_after"]), abs=2e-4)

    for command, prefix in (("validate", "val"), ("test", "test")):
        main([command, *common, f"--ckpt_path={fit['last_ckpt']}"])
        values = _result(capsys.readouterr().out)
        assert values["ckpt"] == fit["last_ckpt"]
        assert {f"{prefix}_ssim", f"{prefix}_abs_rel", "seconds"} <= set(values)
        assert "best_ckpt" not in values
        if command == "validate":  # the same weights and split as the fit's last validation
            assert float(values["val_ssim"]) == pytest.approx(float(fit["val_ssim"]), abs=2e-4)


# -- errors -----------------------------------------------------------------------------------


def test_a_bad_input_is_one_line_on_stderr(tmp_path: Path) -> None:
    missing = tmp_path / "missing.ckpt"
    done = _run("export", "--ckpt_path", str(missing))
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: checkpoint {missing} does not exist"), done.stderr
    assert "Traceback" not in done.stderr
    shown = _run("export", "--ckpt_path", str(missing), env={**ENV, cli.TRACEBACK_VARIABLE: "1"})
    assert shown.returncode != 0 and "Traceback" in shown.stderr and "DataError" in shown.stderr


def test_only_this_packages_value_errors_are_shortened() -> None:
    from lightning_depth.callbacks.summary import result_line
    from lightning_depth.io.errors import DataError

    def caught(function, *args) -> ValueError:
        with pytest.raises(ValueError) as info:
            function(*args)
        return info.value

    assert cli._reportable(caught(result_line, {"a b": 1}))  # raised in lightning_depth/
    assert not cli._reportable(caught(int, "x"))  # a bug's ValueError keeps its traceback
    assert cli._reportable(DataError("bad file"))
