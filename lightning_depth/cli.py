"""``lightning_depth`` command line.

``fit``/``validate``/``test``/``predict`` go through LightningCLI (configs under
``configs/``), except ``predict --model FILE.onnx|FILE.pt``, which predicts from an exported
file (:mod:`lightning_depth.deploy.predict_command`); the :data:`TOOLS` (``synth``,
``prepare``, ``export``, ...) are plain commands.
``lightning_depth``, ``-h`` or ``--help`` lists them all; ``lightning_depth <command> --help``
shows one command's options.

Run as a command (``lightning_depth ...``, ``python -m lightning_depth ...``), a bad input
(:class:`~lightning_depth.io.errors.DataError`) or a bad setting (a ``ValueError`` raised by
this package) ends with ``error: <message>`` on stderr and exit status 2, without a
traceback; ``LIGHTNING_DEPTH_TRACEBACK=1`` shows it. Called from Python with an argument
list, :func:`main` lets exceptions through.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import re
import sys
import traceback
from pathlib import Path
from typing import Optional, Sequence

from lightning_depth.config import DepthCLI, build_cli
from lightning_depth.io.errors import DataError

#: commands that are not LightningCLI subcommands: name -> "module:function", where the
#: function takes the remaining arguments and returns an exit code (imported on use).
TOOLS = {
    "synth": "lightning_depth.data.synth_command:main",
    "export": "lightning_depth.deploy.export:main",
    "compress": "lightning_depth.deploy.compress:main",
    "prepare": "lightning_depth.data.prepare:main",
    "ablate": "lightning_depth.ablation.command:main",
    "check-data": "lightning_depth.config:check_data_main",
}

#: ``predict --model FILE.onnx|FILE.pt`` (an exported file rather than a model config).
EXPORTED_PREDICT = "lightning_depth.deploy.predict_command:main"
EXPORTED_SUFFIXES = (".onnx", ".pt")

#: one line per command for ``lightning_depth --help``; a command missing here is described
#: by the first sentence of its function's (or else module's) docstring.
SUMMARIES = {
    "fit": "train (and validate) a model from configs; --ckpt_path last resumes",
    "validate": "evaluate a checkpoint (or --pretrained NAME) on the validation split",
    "test": "evaluate a checkpoint (or --pretrained NAME) on the test split",
    "predict": "write depth/disparity maps and point clouds (--model FILE.onnx: exported file)",
    "synth": "write a generated dataset in the real DIODE or Monkaa layout",
    "prepare": "write litdata shards of DIODE or Monkaa (local or s3://), split as in training",
    "export": "export a checkpoint to ONNX or TorchScript (camera graph + contract), checked",
    "compress": "int8 quantisation and pruning of a checkpoint, with a report",
    "ablate": "train every variant of an ablation on the same data and budget, with a report",
}

#: set to 1 to see the traceback of errors the command would print as one line
TRACEBACK_VARIABLE = "LIGHTNING_DEPTH_TRACEBACK"
#: exit status of a usage or input error (as argparse's)
ERROR_STATUS = 2

_PACKAGE = Path(__file__).resolve().parent


def main(argv: Optional[Sequence[str]] = None) -> Optional[int]:
    """Run one ``lightning_depth`` command.

    Args:
        argv: the arguments after the program name; ``None``: the process's own (and errors
            are then printed as ``error: ...``, see the module docstring).

    Returns:
        The exit status of a tool; ``None`` after a LightningCLI command.
    """
    if argv is not None:
        return _run(list(argv), own=False)
    try:
        return _run(sys.argv[1:], own=True)
    except ValueError as error:
        if os.environ.get(TRACEBACK_VARIABLE, "") not in ("", "0") or not _reportable(error):
            raise
        print(f"error: {_message(error)}", file=sys.stderr)
        print(f"({TRACEBACK_VARIABLE}=1 shows the traceback)", file=sys.stderr)
        return ERROR_STATUS


def _run(args: list[str], own: bool) -> Optional[int]:
    if not args or args[0] in ("-h", "--help"):
        # asked for: stdout, success; no command at all: a usage error
        print(usage(), file=sys.stdout if args else sys.stderr)
        return 0 if args else ERROR_STATUS
    if args[0] in TOOLS:
        module, function = TOOLS[args[0]].split(":")
        return getattr(importlib.import_module(module), function)(args[1:])
    if args[0] == "predict" and _predicts_from_exported_file(args[1:]):
        # predict --model FILE.onnx|.pt: an exported file, no checkpoint and no LightningCLI
        module, function = EXPORTED_PREDICT.split(":")
        return getattr(importlib.import_module(module), function)(args[1:])
    # The process's own arguments go to LightningCLI as sys.argv (args=None), as it expects.
    build_cli(None if own else args)
    return None


def _predicts_from_exported_file(args: Sequence[str]) -> bool:
    """Whether ``predict``'s ``--model`` names an exported file (``.onnx``/``.pt``) rather
    than a LightningCLI model (a class or config)."""
    for i, arg in enumerate(args):
        value = args[i + 1] if arg == "--model" and i + 1 < len(args) else None
        if arg.startswith("--model="):
            value = arg.split("=", 1)[1]
        if value is not None and Path(value).suffix in EXPORTED_SUFFIXES:
            return True
    return False


def usage() -> str:
    """What ``lightning_depth --help`` prints: every command with one line."""
    commands = [*DepthCLI.subcommands(), *TOOLS]
    width = max(len(c) for c in commands) + 2
    lines = [
        "usage: lightning_depth <command> [options]",
        "",
        "Depth estimation with PyTorch Lightning: monocular (DIODE) and stereo (Monkaa, Middlebury, KITTI).",
        "",
        "commands:",
    ]
    lines += [f"  {c:<{width}}{SUMMARIES.get(c) or _describe(c)}" for c in commands]
    lines += [
        "",
        "`lightning_depth <command> --help` shows a command's options; fit, validate, test and",
        "predict take --config FILE (repeatable, see configs/) and --print_config.",
    ]
    return "\n".join(lines)


def _describe(command: str) -> str:
    """The first sentence of a tool's function (or else module) docstring, read without
    importing it."""
    if command not in TOOLS:
        return ""
    module, function = TOOLS[command].split(":")
    try:
        spec = importlib.util.find_spec(module)
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    except (ImportError, AttributeError, OSError, SyntaxError, TypeError, ValueError):
        return ""
    docs = [
        ast.get_docstring(node)
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == function
    ] + [ast.get_docstring(tree)]
    text = next((d for d in docs if d), "")
    text = " ".join(text.split("\n\n")[0].split())
    text = re.sub(r":\w+:`~?([^`]+)`", r"\1", text).replace("``", "")
    first = re.split(r"(?<=\.)\s", text, maxsplit=1)[0].rstrip(".")
    # written like the other lines: "check every sample ...", no full stop
    return first[:1].lower() + first[1:] if first[1:2].islower() else first


def _reportable(error: BaseException) -> bool:
    """Bad data, and ``ValueError``s this package raises about its inputs and settings;
    not ``ValueError``s from deeper down (bugs, whose traceback matters)."""
    if isinstance(error, DataError):
        return True
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and Path(frames[-1].filename).resolve().is_relative_to(_PACKAGE)


def _message(error: BaseException) -> str:
    """The error's message (from a DataLoader worker: without the worker's traceback)."""
    text = str(error)
    if "Original Traceback" in text:
        text = text.rsplit(f"{type(error).__name__}: ", 1)[-1]
    return text.strip()


if __name__ == "__main__":
    sys.exit(main())
