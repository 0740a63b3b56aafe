"""``aquapose demo --quick``: the README's main command runs the whole chain and writes a report."""

from __future__ import annotations

import json
import re

import pytest
from _cli import run_cli


def _reject(token: str) -> None:
    raise ValueError(f"summary.json holds {token}, which is not JSON")


@pytest.mark.slow
def test_quick_demo_writes_every_stage_and_a_complete_report(tmp_path, capsys):
    out = tmp_path / "demo"
    code, stdout, _ = run_cli(["demo", "--quick", "--out", str(out)], capsys)
    assert code == 0, stdout[-2000:]

    # Strict JSON: an undefined metric (no predictions to score) is null, not NaN.
    summary = json.loads((out / "summary.json").read_text(), parse_constant=_reject)
    stages = {m["stage"] for m in summary["metrics"]}
    assert stages == {"detect", "pseudo-label", "model", "segment", "review"}
    for m in summary["metrics"]:
        assert m["value"] is None or 0.0 <= m["value"] <= 1.0, m
    assert len(summary["timings_s"]) == 9  # one per stage

    html = (out / "report" / "index.html").read_text()
    for section in ("metrics", "overlays", "training", "failures", "timings"):
        assert f'id="{section}"' in html
    images = re.findall(r"<img src='([^']+)'", html)
    assert any(name.startswith("overlay_") for name in images)
    assert all((out / "report" / name).is_file() for name in images)
    for name in ("results.json", "segments.jsonl"):
        assert (out / "segment" / name).is_file()
    assert (out / "labelstudio" / "tasks.json").is_file()
    # the simulated review went through the Label Studio import into a training set
    assert "What review buys" in html
    assert (out / "review" / "project-export.json").is_file()
    assert (out / "review" / "train.json").is_file()
