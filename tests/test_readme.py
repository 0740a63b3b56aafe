"""The README's "Your own videos" commands, run exactly as written on a tiny synthetic rig.

A simulated reviewer stands in for the person in Label Studio: it accepts every
predicted mask, which is what Label Studio exports for a task whose predictions were
submitted unchanged.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from aquapose.cli import main
from aquapose.segmentation.io.coco import read_coco
from aquapose.synth import generate

README = Path(__file__).resolve().parents[1] / "README.md"


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """(exit code, stderr) of ``aquapose ARGS`` run in this process."""
    with pytest.raises(SystemExit) as info:
        main(args)
    code = info.value.code
    return (code if isinstance(code, int) else int(code is not None)), capsys.readouterr().err


def readme_commands(section: str) -> list[list[str]]:
    """The ``aquapose`` commands of the first bash block after ``section``, as argv lists."""
    text = README.read_text(encoding="utf-8")
    start = text.index(section)
    block = re.search(r"```bash\n(.*?)```", text[start:], re.S)
    assert block is not None, f"no bash block after {section!r} in README.md"
    script = block.group(1).replace("\\\n", " ")
    lines = [
        line for line in script.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    commands = [shlex.split(line) for line in lines]
    assert all(c[0] == "aquapose" for c in commands), commands
    return [c[1:] for c in commands]


def simulate_review(tasks_json: Path, export_json: Path) -> None:
    """A Label Studio JSON export in which every task's predictions were accepted."""
    tasks = json.loads(tasks_json.read_text())
    export = [
        {
            "id": i,
            "data": task["data"],
            "annotations": [{"id": i, "result": task["predictions"][0]["result"]}],
        }
        for i, task in enumerate(tasks, start=1)
    ]
    export_json.write_text(json.dumps(export))


@pytest.mark.slow
def test_readme_workflow_runs_as_written(tmp_path, monkeypatch, capsys):
    rig = tmp_path / "rig"
    generate(tmp_path / "synth", preset="tiny", seed=5, frames=150, fish=5)
    rig.mkdir()
    for n, source in enumerate(sorted((tmp_path / "synth").glob("cam*.mp4")), start=1):
        source.rename(rig / f"cam{n:02d}.mp4")
    monkeypatch.chdir(tmp_path)
    commands = readme_commands("## Your own videos")
    assert [c[0] for c in commands] == [
        "detect", "pseudolabel", "ls", "ls", "train", "evaluate", "segment"
    ]  # fmt: skip
    for args in commands:
        if "project-export.json" in args:
            simulate_review(Path("work/ls/tasks.json"), Path("project-export.json"))
        code, err = run_cli(args, capsys)
        assert code == 0, f"aquapose {' '.join(args)} failed:\n{err}"
    reviewed = read_coco("work/reviewed.json")
    train = read_coco("work/labels/train.json")
    assert len(reviewed) == len(train)
    results = read_coco("work/masks/results.json")
    assert {f.camera_id for f in results} == {"cam01", "cam02"}
    assert len(results) == 2 * 150  # every frame of both cameras
    assert Path("work/masks/cam01_overlay.mp4").is_file()
