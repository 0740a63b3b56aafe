from aquapose.report import (
    Figure,
    Metric,
    Report,
    Table,
    write_report,
)


def test_metric_pass_logic():
    assert Metric("detect", "recall", 0.96, 0.95).passed is True
    assert Metric("detect", "recall", 0.90, 0.95).passed is False
    assert Metric("t", "seconds", 5.0, 10.0, higher_is_better=False).passed is True
    assert Metric("model", "AP", 0.4).passed is None
    assert Metric("model", "AP", None, 0.5).passed is None


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
