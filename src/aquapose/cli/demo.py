"""``aquapose demo``: the whole chain on built-in synthetic data, ending in a report."""

from __future__ import annotations

from pathlib import Path

import typer

from aquapose.cli._app import app, console
from aquapose.cli._config import config_option, print_config_option, resolve_config


@app.command()
def demo(
    ctx: typer.Context,
    out: Path = typer.Option(
        Path("demo_out"), "--out", help="Folder for every output and the report."
    ),
    seed: int = typer.Option(
        0, "--seed", help="Seed of the synthetic clip (held-out clip: seed + 1)."
    ),
    quick: bool = typer.Option(
        False, "--quick", help="Tiny data and one epoch: a 1-2 minute smoke run."
    ),
    config: Path | None = config_option(),
    print_config: bool = print_config_option("aquapose.demo:DemoConfig"),
) -> None:
    """Run the whole chain on built-in synthetic data and write an HTML report.

    synth -> detect -> pseudolabel -> Label Studio export (review queue) -> train
    (light model) -> evaluate against ground truth -> segment a held-out clip ->
    simulated review of the queue's first frames (ground truth stands in for a
    person; review_frames in --config, 0: off) and what it buys -> report.
    Each stage prints the `aquapose` command that does the same, so you can repeat
    any step on your own videos. About 5-10 minutes on a 2-core CPU (--quick: 1-2
    minutes).
    """
    from aquapose.demo import DemoConfig, run_demo

    base = DemoConfig.quick() if quick else DemoConfig()
    cfg = resolve_config(DemoConfig, ctx, config, {"seed": "seed"}, base=base)
    summary = run_demo(
        out, cfg, log=lambda line: console.print(line, highlight=False, markup=False)
    )
    console.rule("AquaPose demo: key numbers")
    for m in summary["metrics"]:
        value = "n/a" if m["value"] is None else f"{m['value']:.3f}"
        target = "" if m["target"] is None else f"  (target {m['target']:.2f})"
        console.print(f"  {m['stage']:>12}  {m['name']:<40} {value}{target}", highlight=False)
    total = sum(summary["timings_s"].values())
    console.print(f"\ntotal {total / 60:.1f} min. Report: {summary['report']}", highlight=False)
