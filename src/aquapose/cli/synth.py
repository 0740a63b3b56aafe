"""``aquapose synth``: generate the built-in synthetic aquarium (videos + exact ground truth)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import typer

from aquapose.cli._app import app, console, progress_bar
from aquapose.cli._config import config_option, print_config_option, resolve_config
from aquapose.synth.config import SynthConfig, get_preset


@app.command()
def synth(
    ctx: typer.Context,
    out_dir: Path = typer.Argument(..., help="Output folder (created)."),
    preset: str = typer.Option(
        "tiny",
        "--preset",
        help="tiny (seconds), demo (~1 min), rig, crowd (110 small fish), resting (fish resting "
        "40-80% of the clip) or random (floor, light, noise, fish drawn from --seed).",
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Same seed, same ground truth (bytes)."),
    cameras: int | None = typer.Option(None, "--cameras", min=1, help="Override: cameras."),
    fish: int | None = typer.Option(None, "--fish", min=1, help="Override: fish in the tank."),
    frames: int | None = typer.Option(None, "--frames", min=1, help="Override: frames per camera."),
    width: int | None = typer.Option(None, "--width", help="Override: frame width (px, even)."),
    height: int | None = typer.Option(None, "--height", help="Override: frame height (px, even)."),
    fps: float | None = typer.Option(None, "--fps", help="Override: frames per second."),
    write_frames: bool = typer.Option(
        False,
        "--write-frames",
        "--frames-out",
        help="Also write every decoded video frame as frames/<camera>/<index>.png.",
    ),
    preview: bool = typer.Option(
        False, "--preview", help="Also write preview.png: frames with the ground truth drawn."
    ),
    config_file: Path | None = config_option(),
    print_config: bool = print_config_option(SynthConfig),
) -> None:
    """Generate multi-camera fish videos with exact per-fish mask ground truth.

    --config sets any SynthConfig field on top of the preset (--print-config: the demo
    preset's). Writes OUT_DIR/manifest.json, <camera>.mp4 and <camera>_gt.json (COCO, one
    annotation per visible fish with RLE mask, box, fish_id and the flags
    stationary / low_contrast / touching). Prints the manifest path on stdout.
    """
    from aquapose.synth import generate

    base = get_preset(preset, seed)  # fails fast on a bad preset
    flags = {"cameras": "num_cameras", "fish": "num_fish", "frames": "num_frames"}
    flags |= {"width": "width", "height": "height", "fps": "fps"}
    config = resolve_config(SynthConfig, ctx, config_file, flags, base=base)
    overrides = {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(SynthConfig)
        if getattr(config, f.name) != getattr(base, f.name)
    }
    start = time.perf_counter()
    with progress_bar(transient=True) as bar:
        tasks: dict[str, object] = {}

        def report(camera_id: str, done: int, total: int) -> None:
            if camera_id not in tasks:
                tasks[camera_id] = bar.add_task(f"rendering {camera_id}", total=total)
            bar.update(tasks[camera_id], completed=done)  # type: ignore[arg-type]

        manifest = generate(
            out_dir,
            preset=preset,
            seed=seed,
            write_frames=write_frames,
            preview=preview,
            progress=report,
            **overrides,
        )
    elapsed = time.perf_counter() - start
    from aquapose.segmentation.io.files import read_json

    events = read_json(manifest)["events"]
    console.print(
        f"{config.num_cameras} cameras x {config.num_frames} frames "
        f"({config.width}x{config.height} @ {config.fps:g} fps) in {elapsed:.1f} s; "
        f"stationary episodes {events['stationary_episodes']} "
        f"(>= 10 s: {events['stationary_episodes_10s']}), "
        f"low-contrast fish {events['low_contrast_fish']}, "
        f"touching events {events['touching_events']}, empty frames {events['empty_frames']}",
        highlight=False,
    )
    if preview:
        console.print(f"preview: {manifest.parent / 'preview.png'}", highlight=False)
    typer.echo(str(manifest))
