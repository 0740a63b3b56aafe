import numpy as np

from aquapose.report import (
    GT_COLOR,
    PRED_COLOR,
    Figure,
    Metric,
    Report,
    Table,
    overlay_masks,
    write_report,
)


def test_metric_pass_logic():
    assert Metric("detect", "recall", 0.96, 0.95).passed is True
    assert Metric("detect", "recall", 0.90, 0.95).passed is False
    assert Metric("t", "seconds", 5.0, 10.0, higher_is_better=False).passed is True
    assert Metric("model", "AP", 0.4).passed is None
    assert Metric("model", "AP", None, 0.5).passed is None


def test_overlay_draws_both_outlines_without_touching_input():
    image = np.full((40, 40, 3), 128, np.uint8)
    gt = np.zeros((40, 40), bool)
    gt[5:15, 5:15] = True
    pred = np.zeros((40, 40), bool)
    pred[20:30, 20:30] = True
    out = overlay_masks(image, [gt], [pred])
    assert (image == 128).all()
    assert (out[5, 5] == GT_COLOR).all() and (out[20, 20] == PRED_COLOR).all()
    assert (out[25, 25] != 128).any()  # prediction lightly filled
    assert (out[35, 35] == 128).all()


def test_report_has_every_section(tmp_path):
    report = Report(
        title="Run <1>",
        metrics=[Metric("detect", "recall", 0.97, 0.95), Metric("model", "IoU", 0.8, 0.9)],
        tables=[Table("Per camera", ["camera", "recall"], [["cam0", 0.97]])],
        overlays=[Figure("cam0 #1", "overlay.png", "IoU 0.9")],
        timings_s={"detect": 1.5},
    )
    page = write_report(report, tmp_path / "index.html").read_text()
    for section in ("metrics", "overlays", "training", "failures", "timings"):
        assert f'id="{section}"' in page
    assert "Run &lt;1&gt;" in page  # escaped
    assert page.count("class='pass'") == 1 and page.count("class='fail'") == 1
    assert "overlay.png" in page and "0.970" in page and "cam0" in page
    assert [p.name for p in tmp_path.iterdir()] == ["index.html"]
