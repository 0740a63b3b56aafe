"""``aquapose ls``: review pseudo-labels in Label Studio (export/import files, push/pull a server)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer

from aquapose.cli._app import app, console
from aquapose.cli._config import config_option, print_config_option, resolve_config
from aquapose.segmentation.io.labelstudio import DEFAULT_LOW_SCORE, ExportConfig, ImportConfig

ls_app = typer.Typer(
    name="ls",
    help=(
        "Review masks in Label Studio: `export` tasks + labeling config and `import` the "
        "reviewed JSON export back into COCO, or `push`/`pull` with a running server "
        "(API token in $LABEL_STUDIO_API_KEY)."
    ),
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(ls_app, name="ls")

_IMAGE_ROOT_HELP = (
    "Folder the image URLs are relative to: Label Studio's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT "
    "(or the folder --url-prefix serves)."
)
_EXPORT_FLAGS: dict[str, str | tuple[str, ...]] = {
    name: name
    for name in ("image_root", "url_prefix", "polygons", "model_version", "order", "low_score")
}
_IMPORT_FLAGS: dict[str, str | tuple[str, ...]] = {
    name: name for name in ("url_prefix", "alpha_threshold")
}
_URL_PREFIX_HELP = "Image URLs as PREFIX + path relative to the image root, not local-files URLs."
_ORDER_HELP = (
    "Task order: 'file' (the COCO file's) or 'uncertain' (the review queue: frames whose labels "
    "the chain trusts least first; uncertainty = rejected masks + 2 x merged blobs + box-only "
    "fish + sum(1 - score) of the kept masks; ties keep the file order). Every task's data "
    "carries uncertainty, review_reasons and review_rank either way."
)
_LOW_SCORE_HELP = "Kept masks scored below this are named in a task's review_reasons."


def _order_option() -> Any:
    return typer.Option("file", "--order", help=_ORDER_HELP)


def _low_score_option() -> Any:
    return typer.Option(DEFAULT_LOW_SCORE, "--low-score", min=0.0, max=1.0, help=_LOW_SCORE_HELP)


def _how_to(out: Path, root: Path, url_prefix: str | None) -> str:
    tasks, config = out / "tasks.json", out / "labeling_config.xml"
    if url_prefix is None:
        serve = (
            "  1. Start Label Studio so it may serve the frames:\n"
            "       LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true \\\n"
            f"       LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={root} label-studio start\n"
        )
        storage = (
            "  3. Settings > Cloud Storage > Add Source Storage > Local files, absolute path "
            f"{root}\n     (lets it serve the images; do not sync it).\n"
        )
    else:
        serve = f"  1. Serve {root} at {url_prefix} (with CORS allowed for Label Studio).\n"
        storage = ""
    return (
        "How to load this in Label Studio:\n"
        f"{serve}"
        "  2. Create a project; Settings > Labeling Interface > Code: paste\n"
        f"     {config}\n"
        f"{storage}"
        f"  {4 if storage else 3}. Import {tasks} (the fish are predictions: accept, repaint, "
        "delete;\n     submit a frame with no regions when it holds no fish).\n"
        f"  {5 if storage else 4}. Export > JSON, then:\n"
        f"     aquapose ls import EXPORT.json --out reviewed.json --image-root {root}"
        + (f" --url-prefix {url_prefix}" if url_prefix else "")
        + "\nWith a running server instead: aquapose ls push / aquapose ls pull."
    )


@ls_app.command("export")
def export_cmd(
    ctx: typer.Context,
    coco: Path = typer.Argument(..., help="COCO JSON with the masks to review (pseudo-labels)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for tasks.json + config."),
    image_root: Path | None = typer.Option(
        None,
        "--image-root",
        help=_IMAGE_ROOT_HELP
        + " Default: the deepest folder holding the COCO file and every image.",
    ),
    url_prefix: str | None = typer.Option(None, "--url-prefix", help=_URL_PREFIX_HELP),
    polygons: bool = typer.Option(
        False, "--polygons", help="Predictions as polygons (editable points; lossy) not brush."
    ),
    model_version: str = typer.Option("aquapose", "--model-version", help="Predictions' tag."),
    order: str = _order_option(),
    low_score: float = _low_score_option(),
    config: Path | None = config_option(),
    print_config: bool = print_config_option(ExportConfig),
) -> None:
    """Write Label Studio tasks (the fish as predictions) and the labeling config.

    OUT/tasks.json holds one task per frame, OUT/labeling_config.xml the config
    (BrushLabels, label fish); then it prints how to load them in Label Studio.
    With --order uncertain the tasks form a review queue: reviewing the first K
    fixes the frames with the most rejected masks, merged blobs, box-only fish
    and low scores (each task's data says why: review_reasons).
    """
    from aquapose.segmentation.io.labelstudio import export_to_label_studio

    cfg = resolve_config(ExportConfig, ctx, config, _EXPORT_FLAGS)
    export = export_to_label_studio(coco, out, **asdict(cfg))
    console.print(
        f"wrote {export.tasks_json} ({export.tasks} tasks, {export.regions} regions, "
        f"{cfg.order} order) and {export.config_xml}",
        highlight=False,
    )
    console.print(
        _how_to(out, export.image_root, cfg.url_prefix),
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


@ls_app.command("import")
def import_cmd(
    ctx: typer.Context,
    export_json: Path = typer.Argument(..., help="Label Studio JSON export of the project."),
    out: Path = typer.Option(..., "--out", "-o", help="COCO JSON to write."),
    image_root: Path = typer.Option(..., "--image-root", help=_IMAGE_ROOT_HELP),
    url_prefix: str | None = typer.Option(None, "--url-prefix", help=_URL_PREFIX_HELP),
    alpha_threshold: int = typer.Option(
        128, "--alpha-threshold", min=1, max=255, help="Brush pixels with alpha >= this are fish."
    ),
    onto: Path | None = typer.Option(
        None,
        "--onto",
        help="COCO training set (e.g. work/labels/train.json) to write with the reviewed "
        "frames in place of their pseudo-labels (matched by image file) and reviewed frames "
        "it lacks added; without it OUT holds the reviewed frames only.",
    ),
    config: Path | None = config_option(),
    print_config: bool = print_config_option(ImportConfig),
) -> None:
    """Import a reviewed Label Studio JSON export into COCO.

    Per task the newest non-cancelled annotation is kept; cancelled/skipped and
    unannotated tasks are left out and counted; a frame submitted with no regions
    stays, with no fish. A bad export fails with one message and writes nothing.
    Reviewed frames lose the pseudo-labeler's trust marks (rejected boxes, box-only
    and merged flags): a reviewed mask is trusted.
    """
    from aquapose.segmentation.io.labelstudio import import_from_label_studio
    from aquapose.segmentation.labels import write_reviewed

    cfg = resolve_config(ImportConfig, ctx, config, _IMPORT_FLAGS)
    if onto is None:
        report = import_from_label_studio(
            export_json, image_root=image_root, out_coco=out, **asdict(cfg)
        )
        console.print(f"wrote {out}: {report.summary()}", highlight=False)
        return
    report = import_from_label_studio(export_json, image_root=image_root, **asdict(cfg))
    info = {"description": f"{onto.name} with frames reviewed in {export_json.name}"}
    merged = write_reviewed(onto, report.frames, image_root, out, info=info)
    console.print(
        f"wrote {out}: {report.summary()}; onto {onto}: {merged.replaced} frames replaced, "
        f"{merged.added} added, {len(merged.frames)} in all",
        highlight=False,
    )


@ls_app.command("push")
def push_cmd(
    ctx: typer.Context,
    coco: Path = typer.Argument(..., help="COCO JSON with the masks to review."),
    url: str = typer.Option(..., "--url", envvar="LABEL_STUDIO_URL", help="Label Studio URL."),
    project: str = typer.Option(..., "--project", help="Project title (created if missing)."),
    image_root: Path | None = typer.Option(
        None,
        "--image-root",
        help=_IMAGE_ROOT_HELP
        + " Default: the deepest folder holding the COCO file and every image.",
    ),
    url_prefix: str | None = typer.Option(None, "--url-prefix", help=_URL_PREFIX_HELP),
    polygons: bool = typer.Option(False, "--polygons", help="Predictions as polygons."),
    model_version: str = typer.Option("aquapose", "--model-version", help="Predictions' tag."),
    order: str = _order_option(),
    low_score: float = _low_score_option(),
    storage: bool = typer.Option(
        True,
        "--storage/--no-storage",
        help="Register the image root as the project's local-files storage (needed for "
        "Label Studio to serve the frames; the server must see the same path).",
    ),
    config: Path | None = config_option(),
    print_config: bool = print_config_option(ExportConfig),
) -> None:
    """Push frames with their masks as predictions to a Label Studio project.

    Creates the project (or reuses it: frames already there are skipped). The API
    token is read from $LABEL_STUDIO_API_KEY and never printed.
    """
    from aquapose.segmentation.io.labelstudio_server import push_to_label_studio

    cfg = resolve_config(ExportConfig, ctx, config, _EXPORT_FLAGS)
    report = push_to_label_studio(coco, url=url, project=project, storage=storage, **asdict(cfg))
    state = "created" if report.project_created else "reused"
    console.print(
        f"project {project!r} (id {report.project_id}, {state}): {report.imported} tasks "
        f"imported, {report.already_there} already there",
        highlight=False,
    )


@ls_app.command("pull")
def pull_cmd(
    ctx: typer.Context,
    url: str = typer.Option(..., "--url", envvar="LABEL_STUDIO_URL", help="Label Studio URL."),
    project: str = typer.Option(..., "--project", help="Project title."),
    out: Path = typer.Option(..., "--out", "-o", help="COCO JSON to write."),
    image_root: Path = typer.Option(..., "--image-root", help=_IMAGE_ROOT_HELP),
    url_prefix: str | None = typer.Option(None, "--url-prefix", help=_URL_PREFIX_HELP),
    save_export: Path | None = typer.Option(
        None, "--save-export", help="Also keep Label Studio's raw JSON export here."
    ),
    alpha_threshold: int = typer.Option(
        128, "--alpha-threshold", min=1, max=255, help="Brush pixels with alpha >= this are fish."
    ),
    config: Path | None = config_option(),
    print_config: bool = print_config_option(ImportConfig),
) -> None:
    """Pull a Label Studio project's reviewed annotations into COCO.

    Same policy as `aquapose ls import`. The API token is read from
    $LABEL_STUDIO_API_KEY and never printed.
    """
    from aquapose.segmentation.io.labelstudio_server import pull_from_label_studio

    cfg = resolve_config(ImportConfig, ctx, config, _IMPORT_FLAGS)
    report = pull_from_label_studio(
        url=url,
        project=project,
        out_coco=out,
        image_root=image_root,
        save_export=save_export,
        **asdict(cfg),
    )
    console.print(f"wrote {out}: {report.summary()}", highlight=False)
