"""``featx predict`` and ``featx.load_predictor``: new images labelled by a fitted run,
through stage one's own code path, exactly as the run's test accuracy was measured.

The backbone is ``test_resnet`` with random weights (so the numbers say nothing about
pretrained features; the tests check that predictions are the run's, not that they are good).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import featx
from featx.core.errors import ImageReadError, PredictError
from featx.deploy.predictor import collect_images
from tests.deploying import CLASSIFIERS, EXTRACT, Fitted, cli, fit_comparison
from tests.fakes import write_image, write_image_folder


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Fitted:
    return fit_comparison(tmp_path_factory.mktemp("predict"))


def _predict_json(fitted: Fitted, *args: str) -> dict:
    result = cli("predict", "--reports-dir", str(fitted.reports_dir), "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("clf", CLASSIFIERS)
def test_the_test_folder_gets_exactly_the_labels_behind_the_record_s_test_accuracy(fitted: Fitted, clf: str) -> None:
    record = fitted.records[clf]
    out = _predict_json(fitted, "--model", str(fitted.record_path(clf)), str(fitted.root / "test"))
    by_path = {row["path"]: row["label"] for row in out["predictions"]}
    X, y, files = fitted.test_split()
    assert sorted(by_path) == sorted(files)  # every test image, the large (PIL-shrunk) ones too
    model = featx.load_model(record, fitted.reports_dir)
    names = record.class_names
    np.testing.assert_array_equal([by_path[f] for f in files], [names[i] for i in model.predict(X)])
    predicted = np.array([names.index(by_path[f]) for f in files])
    assert np.mean(predicted == y) == record.test_accuracy
    confusion = np.zeros((len(names), len(names)), dtype=int)
    np.add.at(confusion, (y, predicted), 1)
    assert confusion.tolist() == record.confusion_matrix


def test_scores_are_probabilities_or_decision_values_and_the_top_k_are_ordered(fitted: Fitted) -> None:
    for clf, kind in (("logreg", "probability"), ("knn", "probability"), ("linearsvc", "decision")):
        out = _predict_json(fitted, "--model", str(fitted.record_path(clf)), "--top-k", "2", str(fitted.root / "test" / "owl"))
        assert out["score"] == kind and out["run"]["run_key"] == fitted.records[clf].run_key
        for row in out["predictions"]:
            top = row["top"]
            assert len(top) == 2 and top[0] == {"label": row["label"], "score": row["score"]}
            assert top[0]["score"] >= top[1]["score"]
    predictor = featx.load_predictor(fitted.record_path("logreg"), device="cpu")
    result = predictor.predict(fitted.root / "test")
    np.testing.assert_allclose(result.scores.sum(axis=1), 1.0, rtol=1e-6)
    indices, scores = result.top_k(3)
    assert indices.shape == (len(result), 3)
    assert (np.diff(scores, axis=1) <= 0).all()  # best first
    np.testing.assert_array_equal(indices[:, 0], result.indices)
    np.testing.assert_array_equal(np.sort(indices, axis=1), np.tile([0, 1, 2], (len(result), 1)))  # each class once


def test_csv_on_stdout_one_row_per_image_with_the_top_k(fitted: Fitted) -> None:
    result = cli(
        "predict",
        "--reports-dir",
        str(fitted.reports_dir),
        "--model",
        str(fitted.record_path("linearsvc")),
        "--top-k",
        "3",
        str(fitted.root / "test"),
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["path", "label", "score", "label_1", "score_1", "label_2", "score_2", "label_3", "score_3"]
    assert len(rows) == 1 + len(fitted.test_split()[2])
    for row in rows[1:]:
        assert row[1] == row[3] and row[2] == row[4] and float(row[4]) >= float(row[6]) >= float(row[8])


def test_best_is_the_best_cell_of_the_latest_report_and_a_run_key_prefix_works(fitted: Fitted) -> None:
    missing = cli("predict", "--reports-dir", str(fitted.reports_dir / "elsewhere"), "--model", "best", str(fitted.root / "test"))
    assert missing.exit_code == 2 and "featx report" in missing.stderr
    reports = fitted.reports_dir
    files = featx.report(reports, pca=False)
    best = max(fitted.records.values(), key=lambda r: r.test_accuracy)  # first of equals, as the report's star
    first_best = next(r for r in fitted.records.values() if r.test_accuracy == best.test_accuracy)
    out = _predict_json(fitted, "--model", "best", str(fitted.root / "test" / "cat"))
    assert files.csv.exists() and out["run"]["run_key"] in {
        r.run_key for r in fitted.records.values() if r.test_accuracy == best.test_accuracy
    }
    assert out["run"]["test_accuracy"] == first_best.test_accuracy
    wrong = cli("predict", "--reports-dir", str(reports), "--model", "best", "--dataset", "cifar10", str(fitted.root / "test"))
    assert wrong.exit_code == 2 and "no run on data set 'cifar10'" in wrong.stderr and "pets" in wrong.stderr
    key = fitted.records["knn"].run_key
    assert _predict_json(fitted, "--model", key[:8], str(fitted.root / "test" / "cat"))["run"]["run_key"] == key
    unknown = cli("predict", "--reports-dir", str(reports), "--model", "ffffffffffffffff", str(fitted.root / "test"))
    assert unknown.exit_code == 2 and len(unknown.stderr.strip().splitlines()) == 1


def test_an_unreadable_image_is_named_and_stops_the_run_or_is_skipped(fitted: Fitted, tmp_path: Path) -> None:
    folder = tmp_path / "new"
    shutil.copytree(fitted.root / "test" / "dog", folder / "dog")
    broken = folder / "dog" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    args = ["predict", "--reports-dir", str(fitted.reports_dir), "--model", str(fitted.record_path("logreg")), str(folder)]
    stopped = cli(*args)
    assert stopped.exit_code == 2 and stopped.stdout == ""
    assert str(broken) in stopped.stderr and "--skip-bad" in stopped.stderr and "Traceback" not in stopped.stderr
    skipped = cli(*args, "--skip-bad", "--json")
    assert skipped.exit_code == 0, skipped.output
    out = json.loads(skipped.stdout)
    assert [s["path"] for s in out["skipped"]] == [str(broken)] and str(broken) in skipped.stderr
    assert len(out["predictions"]) == len(list((folder / "dog").glob("*"))) - 1


def test_refuses_a_backbone_whose_weights_changed(tmp_path: Path) -> None:
    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(3)
    checkpoint = tmp_path / "mine.safetensors"
    save_file(timm.create_model("test_resnet", pretrained=False).state_dict(), str(checkpoint))
    root = write_image_folder(tmp_path / "pets", per_class={"train": 4, "test": 2})
    options = {**EXTRACT, "weights": str(checkpoint)}
    features = featx.extract(f"imagefolder:{root}", **options)
    record = featx.fit(features, clf="logreg", grid={"C": [1.0]}, cv=2, dataset=None, n_jobs=1)
    predict = ["predict", "--model", str(record.path()), str(root / "test")]
    assert cli(*predict).exit_code == 0

    moved = tmp_path / "moved.safetensors"
    checkpoint.rename(moved)
    gone = cli(*predict)
    assert gone.exit_code == 2 and str(checkpoint) in gone.stderr and "--weights" in gone.stderr
    assert cli(*predict, "--weights", str(moved)).exit_code == 0  # the same file elsewhere: same sha256

    torch.manual_seed(4)
    save_file(timm.create_model("test_resnet", pretrained=False).state_dict(), str(checkpoint))  # other weights, same path
    changed = cli(*predict)
    assert changed.exit_code == 2 and "sha256 differs" in changed.stderr and "Traceback" not in changed.stderr
    with pytest.raises(PredictError, match="not the ones this run was fitted on"):
        featx.load_predictor(record.path(), weights="random")


def test_a_model_file_replaced_after_fitting_is_not_unpickled(fitted: Fitted, tmp_path: Path) -> None:
    copy = tmp_path / "runs"
    shutil.copytree(fitted.record_path("logreg").parent, copy)
    record = copy / fitted.record_path("logreg").name
    record.with_suffix(".joblib").write_bytes(record.with_suffix(".joblib").read_bytes() + b"\0")
    result = cli("predict", "--model", str(record), str(fitted.root / "test"))
    assert result.exit_code == 2 and "sha256" in result.stderr


def test_api_takes_paths_pil_images_and_arrays_alike(fitted: Fitted) -> None:
    from PIL import Image

    predictor = featx.load_predictor(fitted.record_path("logreg"), reports_dir=fitted.reports_dir, device="cpu")
    files = sorted((fitted.root / "test" / "cat").iterdir())[:3]
    with Image.open(files[1]) as opened:
        image = opened.copy()
    pixels = np.asarray(Image.open(files[2]).convert("RGB"))
    from_files = predictor.predict([str(f) for f in files])
    mixed = predictor.predict([files[0], image, pixels])
    assert mixed.paths == (str(files[0]), "<image 0>", "<image 1>")
    np.testing.assert_allclose(mixed.scores, from_files.scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(predictor.predict_proba(pixels[None]), from_files.scores[2:], rtol=1e-5, atol=1e-6)
    grey = predictor.predict(pixels[:, :, 0])  # one grey image: repeated to three channels, as a grey file is
    assert grey.scores.shape == (1, 3)
    svc = featx.load_predictor(fitted.record_path("linearsvc"), device="cpu")
    with pytest.raises(PredictError, match="decision values"):
        svc.predict_proba(files[0])
    assert svc.decision_function(files).shape == (3, 3)
    with pytest.raises(featx.ConfigError, match="uint8"):
        predictor.predict(np.zeros((8, 8, 3), dtype=np.float32))


def test_folders_are_searched_recursively_and_missing_paths_are_errors(tmp_path: Path) -> None:
    write_image(tmp_path / "a" / "x" / "1.png")
    write_image(tmp_path / "a" / "2.jpg")
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    write_image(tmp_path / "a" / ".hidden" / "3.png")
    assert [name for name, _ in collect_images(tmp_path / "a")] == [str(tmp_path / "a" / "2.jpg"), str(tmp_path / "a" / "x" / "1.png")]
    with pytest.raises(ImageReadError, match="does not exist"):
        collect_images([tmp_path / "nope.png"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageReadError, match="no images"):
        collect_images(tmp_path / "empty")


def test_out_writes_csv_or_json_and_never_over_a_file_featx_did_not_write(fitted: Fitted, tmp_path: Path) -> None:
    base = [
        "predict",
        "--reports-dir",
        str(fitted.reports_dir),
        "--model",
        str(fitted.record_path("knn")),
        str(fitted.root / "test" / "cat"),
    ]
    out = tmp_path / "labels.json"
    assert cli(*base, "--out", str(out)).exit_code == 0
    assert json.loads(out.read_text())["format"] == "featx-predictions"
    assert cli(*base, "--out", str(out)).exit_code == 0  # featx's own file: replaced
    mine = tmp_path / "mine.csv"
    mine.write_text("my,own,data\n")
    refused = cli(*base, "--out", str(mine))
    assert refused.exit_code == 2 and "refusing" in refused.stderr and mine.read_text() == "my,own,data\n"
    bad = cli(*base, "--out", str(tmp_path / "labels.txt"))
    assert bad.exit_code == 2 and "--out" in bad.stderr and not (tmp_path / "labels.txt").exists()


def test_help_has_an_example() -> None:
    result = cli("predict", "--help")
    assert result.exit_code == 0 and "featx predict --model best" in result.output and "--top-k" in result.output
