"""The `shipbench api-index` verb: byte-stable JSON, and a one-line error on a bad directory."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from shipbench.cli import app

GEMS = Path(__file__).parent / "fixtures" / "gems"


def test_api_index_json_is_stable(tmp_path: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["api-index", str(GEMS / "aliases-0.1.0")])
    assert first.exit_code == 0, first.output
    data = json.loads(first.stdout)
    assert "say" in data["classes"]["Aliases::Speaker"]["instance_methods"]
    out = tmp_path / "index.json"
    second = runner.invoke(app, ["api-index", str(GEMS / "aliases-0.1.0"), "--json", str(out)])
    assert second.exit_code == 0 and out.read_text() == first.stdout


def test_api_index_bad_dir(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["api-index", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "not a directory" in result.output
