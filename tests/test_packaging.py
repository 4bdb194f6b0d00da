"""A plain (non-editable) install ships the templates and renders a report from them."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest
from conftest import REPO, SAMPLE_LOGS

pytestmark = pytest.mark.slow  # builds and installs a wheel


def test_wheel_ships_templates_and_renders_outside_the_checkout(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(REPO)],
        check=True,
        capture_output=True,
    )
    [wheel] = (tmp_path / "dist").glob("gradaudit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for template in ("base.html", "index.html", "run.html", "report.css", "report.js", "run.js"):
        assert f"analyzer/templates/{template}" in names
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    code = (
        "import sys; import analyzer, analyzer.report as r;"
        "assert analyzer.__file__.startswith(sys.argv[1]), analyzer.__file__;"
        "assert str(r._templates_dir()).startswith(sys.argv[1]);"
        "from analyzer.cli import main; sys.exit(main(['report', sys.argv[2], '-o', sys.argv[3], '-q']))"
    )
    # run from a folder that is not the checkout, so only the installed copy can be imported
    subprocess.run(
        [sys.executable, "-c", code, str(target), str(SAMPLE_LOGS), str(tmp_path / "out")],
        check=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(target)},  # the installed copy first
        capture_output=True,
    )
    assert (tmp_path / "out" / "index.html").stat().st_size > 1000
