"""``lightning_depth`` command line.

``fit``/``validate``/``test``/``predict`` go through LightningCLI (configs under
``configs/``); ``synth`` writes generated datasets in the real DIODE / Monkaa layouts.
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from lightning_depth.config import build_cli

#: commands that are not LightningCLI subcommands: name -> "module:function", where the
#: function takes the remaining arguments and returns an exit code (imported on use).
TOOLS = {
    "synth": "lightning_depth.data.synth_command:main",
    "export": "lightning_depth.deploy.export:main",
    "compress": "lightning_depth.deploy.compress:main",
    "prepare": "lightning_depth.data.prepare:main",
    "ablate": "lightning_depth.ablation.command:main",
}


def main(argv: Optional[Sequence[str]] = None) -> Optional[int]:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in TOOLS:
        import importlib

        module, function = TOOLS[args[0]].split(":")
        return getattr(importlib.import_module(module), function)(args[1:])
    build_cli(args)
    return None


if __name__ == "__main__":
    sys.exit(main())
