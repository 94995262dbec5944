"""``lightning_depth predict --model FILE.onnx|FILE.pt --inputs PATH... [--out DIR] [writer
options]``: predict from an exported file, with no checkpoint and no model code.

The file (a camera graph: ``lightning_depth export`` without ``--network``) is run by
:func:`lightning_depth.deploy.load` on each input's 8-bit RGB pixels as read from disk, and
its maps are written as ``lightning_depth predict --config ... --ckpt_path ...`` writes them
(:class:`~lightning_depth.callbacks.writer.DepthPredictionWriter`: colour PNG with a colour
bar, raw map, point cloud). The writer's options are flags of the same names
(``--raw_format pfm``, ``--point_cloud false``, ``--calib calib.txt``, ``--fx 995``,
``--baseline 0.193``, ``--fixed_range '[0, 10]'``, ...; ``--help`` lists them).

Inputs, by the file's number of inputs: one (mono) - image files and folders of images
(:func:`~lightning_depth.data.predict.list_images`); two (stereo) - folders with ``left/``
and ``right/``, or one ``LEFT RIGHT`` pair of files
(:func:`~lightning_depth.data.predict.list_stereo_pairs`). Outputs go to ``--out``
(default ``outputs/predict/<file stem>``); one line per input says what was written where.
The predict resolution and stages are those the file was exported with (its metadata).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from jsonargparse import ArgumentParser

from lightning_depth.callbacks.writer import MAP_KINDS, DepthPredictionWriter
from lightning_depth.data.predict import list_images, list_stereo_pairs
from lightning_depth.deploy.runtime import DeployedModel, load
from lightning_depth.io.errors import DataError
from lightning_depth.io.images import read_rgb

__all__ = ["main", "predict_exported"]

#: writer arguments that belong to a checkpoint's task, fixed in an exported file instead
#: (and the output folder, given as ``--out``).
_NOT_WRITER_OPTIONS = {"output_dir", "stages", "resolution"}


def _parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="lightning_depth predict",
        description="Depth or disparity maps, colour pictures and point clouds from an "
        "exported file (lightning_depth export), with no checkpoint.",
    )
    parser.add_argument("--model", required=True, help="exported camera graph: .onnx or .pt")
    parser.add_argument(
        "--inputs",
        nargs="+",
        required=True,
        help="mono: image files or folders; stereo: folders with left/ and right/, or one "
        "LEFT RIGHT pair of files",
    )
    parser.add_argument("--out", default=None, help="default: outputs/predict/<file stem>")
    parser.add_class_arguments(DepthPredictionWriter, nested_key=None, skip=_NOT_WRITER_OPTIONS)
    return parser


def _groups(model: DeployedModel, inputs: list[str]) -> list[tuple[str, list[tuple]]]:
    """The inputs as ``(what was given, [(path, ..., name), ...])``, one group per folder,
    file or pair given; the listing functions check them (and that no two names collide)."""
    count = len(model.input_names)
    if count == 1:
        list_images(inputs)  # every input at once: names must not collide across them
        return [(entry, list_images(entry)) for entry in inputs]
    if count == 2:
        pairs = list_stereo_pairs(inputs)
        if len(inputs) == 2 and all(Path(e).is_file() for e in inputs):
            return [(f"{inputs[0]} + {inputs[1]}", pairs)]
        return [(entry, list_stereo_pairs(entry)) for entry in inputs]
    raise DataError(
        f"exported model {model.path} takes {count} images ({', '.join(model.input_names)}); "
        "predict lists single images or stereo pairs only"
    )


def predict_exported(
    model: DeployedModel, inputs: Sequence[str], out: Path, **writer_options: Any
) -> list[str]:
    """Write the maps of every input with ``model``; returns the summary lines (one per
    input given).

    Raises:
        DataError: the file is not a camera graph, or an input is missing or unreadable.
    """
    if model.kind not in MAP_KINDS:
        raise DataError(
            f"exported model {model.path} is a bare network (output {model.kind!r}, "
            f"{model.unit}); predict needs a camera graph: export it without --network"
        )
    meta = model.metadata
    resolution = meta.get("predict_resolution") or "native"
    train = meta.get("train_size")
    note = f"{resolution}, fixed in {model.path.name}" + (
        f" (trained at {train[0]}x{train[1]})" if train else ""
    )
    lines = []
    for entry, items in _groups(model, list(inputs)):
        writer = DepthPredictionWriter(output_dir=str(out), **writer_options)
        writer.check_map_kind(model.kind)
        writer.output_dir.mkdir(parents=True, exist_ok=True)
        writer.predict_note = note
        for item in items:
            *paths, name = item
            images = [read_rgb(p) for p in paths]
            prediction = torch.from_numpy(model(*images))[None, None]  # (1, 1, H, W) float32
            writer.check_predicted(prediction, model.kind, [name])
            writer.write_maps(prediction, model.kind, images[:1], [name])
        lines.append(writer.summary_line(entry))
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``lightning_depth predict --model FILE.onnx``: see the module docstring."""
    args = _parser().parse_args(list(argv or []))
    options = {
        k: v for k, v in args.as_dict().items() if k not in ("model", "inputs", "out", "config")
    }
    model = load(args.model)
    out = Path(args.out) if args.out else Path("outputs/predict") / Path(args.model).stem
    for line in predict_exported(model, args.inputs, out, **options):
        print(line, flush=True)
    return 0
