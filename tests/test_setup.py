"""A fresh machine is CI: the README's set-up and test lines are what .ci/run runs, and the
set-up line installs everything the tests import."""

from __future__ import annotations

import configparser
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _readme_block() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Set up, run the demo, run the tests", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [re.sub(r"\s*#.*$", "", line) for line in block.strip().splitlines()]


def test_ci_runs_exactly_the_readme_lines() -> None:
    setup, main_job, tests = _readme_block()
    assert setup.startswith("pip install torch==2.13.0 && ")
    assert main_job == "lightning_depth fit --config configs/demo/mono.yaml"
    assert tests == "python -m pytest"
    # .ci/run extracts the same three lines (its own extraction, run on the README)
    script = (REPO / ".ci" / "run").read_text()
    extract = re.search(r"^block=\$\((awk .*)\)$", script, re.M).group(1)
    out = subprocess.run(["bash", "-c", extract], cwd=REPO, capture_output=True, text=True)
    lines = [re.sub(r"\s*#.*$", "", line) for line in out.stdout.strip().splitlines()]
    assert lines == [setup, main_job, tests]
    # ... and installs nothing else
    assert "pip install" not in script.replace(
        "pip install --quiet --disable-pip-version-check --upgrade pip", ""
    )


def test_the_setup_line_installs_what_the_tests_need() -> None:
    setup = _readme_block()[0]
    assert "--no-deps litdata==" in setup and '".[test,parity]"' in setup
    extras = configparser.ConfigParser()
    extras.read(REPO / "setup.cfg")
    test = extras["options.extras_require"]["test"]
    for package in (
        "pytest",
        "onnx",
        "onnxruntime",
        "onnxscript",
        "boto3",
        "moto[server]",
        "opencv-python-headless",
        "h5py",
    ):
        assert re.search(rf"^{re.escape(package)}(?=[<>=!~;\s]|$)", test, re.M), package
    # litdata's own dependencies, as it is installed without them (torchvision aside)
    for package in ("lightning-utilities", "filelock", "obstore", "requests", "tifffile"):
        assert re.search(rf"^{re.escape(package)}(?=[<>=!~;\s]|$)", test, re.M), package
    parity = extras["options.extras_require"]["parity"]
    for package in ("tensorflow-cpu", "keras", "opencv-python-headless"):
        assert re.search(rf"^{re.escape(package)}(?=[<>=!~;\s]|$)", parity, re.M), package
