"""Bad input through the real command line, in subprocesses (each with a timeout: a hang
fails): every case gives one clear ``featx: error:`` line and exit status 2, or works;
never a traceback."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from featx.cache import write_features
from tests.conftest import make_features
from tests.fakes import write_image, write_image_folder
from tests.reliability.support import assert_one_line_error
from tests.reliability.support import featx as run_featx

EXTRACT = ["extract", "-b", "test_resnet", "--weights", "random", "--image-size", "32", "--batch-size", "8"]
FIT = ["fit", "--cv", "2", "--n-jobs", "1"]
#: case -> (arguments, "error" or "ok", a text the error line (or the output, for "ok") must hold)
Case = tuple[list[str], str, str]


def image_folders(root: Path) -> dict[str, Path]:
    (root / "empty").mkdir(parents=True)
    for name in ("a", "b"):
        (root / "empty-classes" / name).mkdir(parents=True)
        (root / "text-only" / name).mkdir(parents=True)
        (root / "text-only" / name / "notes.txt").write_text("not an image")
    write_image_folder(root / "single", classes=("cat",), per_class={"all": 6}, split=False)
    corrupt = write_image_folder(root / "corrupt", classes=("cat", "dog"), per_class={"all": 5}, split=False)
    (corrupt / "cat" / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    jpeg = write_image(corrupt / "dog" / "cut.jpg", size=(64, 64), seed=3)
    jpeg.write_bytes(jpeg.read_bytes()[:300])
    (corrupt / "dog" / "README.txt").write_text("non-image files are ignored")
    mixed = root / "mixed"
    for index, (size, mode, ext) in enumerate(
        [
            ((32, 32), "RGBA", ".png"),
            ((20, 37), "L", ".png"),
            ((300, 200), "CMYK", ".jpg"),
            ((32, 32), "P", ".png"),
            ((16, 16), "1", ".bmp"),
            ((40, 30), "LA", ".png"),
        ]
    ):
        write_image(mixed / ("a" if index % 2 else "b") / f"{index}{ext}", size=size, mode=mode, seed=index)
    for cls in ("a", "b"):
        grey16 = (np.arange(24 * 24).reshape(24, 24) * 100).astype(np.uint16)
        Image.fromarray(grey16).save(mixed / cls / "sixteen-bit.png")
    write_image_folder(root / "my pets ünï 猫", classes=("chat noir", "chien ü"), per_class={"all": 5}, split=False)
    return {p.name: p for p in root.iterdir()}


def pipelines(root: Path) -> dict[str, Path]:
    files = {
        "unknown key": "backbones: [test_resnet]\nclassifiers: [logreg]\nbackbone: [oops]\n",
        "wrong type": "backbones: 5\nclassifiers: [logreg]\n",
        "wrong option type": "backbones: [{name: test_resnet, image_size: big}]\nclassifiers: [logreg]\n",
        "yaml syntax": "backbones: [test_resnet\nclassifiers: [logreg]\n",
        "empty": "",
        "unknown backbone": "backbones: [resnet-50]\nclassifiers: [logreg]\n",
        "unknown classifier": "backbones: [test_resnet]\nclassifiers: [svm]\n",
        "bad grid": "backbones: [test_resnet]\nclassifiers: [{name: logreg, grid: {C: 'logspace:1'}}]\n",
        "a list": "- test_resnet\n",
    }
    root.mkdir(parents=True)
    for name, text in files.items():
        (root / f"{name.replace(' ', '-')}.yaml").write_text(text)
    return {name: root / f"{name.replace(' ', '-')}.yaml" for name in files}


def cases(root: Path) -> dict[str, Case]:
    folders = image_folders(root / "images")
    yamls = pipelines(root / "pipelines")
    features = write_features(
        root / "features" / "synthetic" / "syn__0123456789abcdef.h5",
        make_features(n_train=30, n_test=15, dim=4),
        class_names=["a", "b", "c"],
        attrs={"key": "0123456789abcdef", "backbone": "syn", "dataset": "synthetic"},
    )
    fit = [*FIT, "--features", str(features)]
    table: dict[str, Case] = {
        "unknown backbone": (["extract", "-b", "resnet-50", "-d", "digits"], "error", "did you mean resnet50"),
        "unknown dataset": ([*EXTRACT, "-d", "cifar11"], "error", "cifar10"),
        "imagefolder without a path": ([*EXTRACT, "-d", "imagefolder:"], "error", "imagefolder needs a path"),
        "missing image folder": ([*EXTRACT, "-d", f"imagefolder:{root / 'nowhere'}"], "error", "does not exist"),
        "empty image folder": ([*EXTRACT, "-d", f"imagefolder:{folders['empty']}"], "error", "no class folders with images"),
        "empty class folders": ([*EXTRACT, "-d", f"imagefolder:{folders['empty-classes']}"], "error", "no class folders with images"),
        "non-image files only": ([*EXTRACT, "-d", f"imagefolder:{folders['text-only']}"], "error", "no class folders with images"),
        "a file for a folder": ([*EXTRACT, "-d", f"imagefolder:{features}"], "error", "is not a directory"),
        "single-class folder": ([*EXTRACT, "-d", f"imagefolder:{folders['single']}"], "ok", "/single/test_resnet__"),
        "corrupt images": ([*EXTRACT, "-d", f"imagefolder:{folders['corrupt']}"], "error", "--skip-bad"),
        "corrupt images, --skip-bad": (
            [*EXTRACT, "-d", f"imagefolder:{folders['corrupt']}", "--skip-bad"],
            "ok",
            "skipped 2 unreadable image(s)",
        ),
        "mixed sizes and modes": ([*EXTRACT, "-d", f"imagefolder:{folders['mixed']}"], "ok", "/mixed/test_resnet__"),
        "spaces and non-ASCII names": ([*EXTRACT, "-d", f"imagefolder:{folders['my pets ünï 猫']}"], "ok", "/my-pets-ünï-猫/test_resnet__"),
        "limit 0": ([*EXTRACT, "-d", "digits", "--limit", "0"], "error", "--limit"),
        "bad mean": ([*EXTRACT, "-d", "digits", "--mean", "a,b,c"], "error", "mean"),
        "unknown precision": ([*EXTRACT, "-d", "digits", "--precision", "fp64"], "error", "--precision"),
        "bad shard": ([*EXTRACT, "-d", "digits", "--shard", "3/2"], "error", "shard"),
        "unknown classifier": ([*fit, "--clf", "svm"], "error", "linearsvc"),
        "C grid not numbers": ([*fit, "--clf", "logreg", "--C-grid", "abc"], "error", "--C-grid"),
        "C grid logspace short": ([*fit, "--clf", "logreg", "--C-grid", "logspace:1:2"], "error", "logspace"),
        "C grid negative": ([*fit, "--clf", "logreg", "--C-grid=-1,2"], "error", "--C-grid"),
        "C grid empty": ([*fit, "--clf", "logreg", "--C-grid", ""], "error", "--C-grid"),
        "C grid infinite": ([*fit, "--clf", "logreg", "--C-grid", "inf"], "error", "--C-grid"),
        "k grid zero": ([*fit, "--clf", "knn", "--k-grid", "0"], "error", "--k-grid"),
        "k grid fraction": ([*fit, "--clf", "knn", "--k-grid", "1.5"], "error", "--k-grid"),
        "unknown grid parameter": ([*fit, "--clf", "logreg", "--grid", "gamma=1"], "error", "gamma"),
        "grid without a value": ([*fit, "--clf", "logreg", "--grid", "C"], "error", "--grid"),
        "cv of 1": ([*fit, "--clf", "logreg", "--cv", "1"], "error", "--cv"),
        "missing features": ([*FIT, "--clf", "logreg", "--features", "nosuch"], "error", "no cached features"),
        "features not HDF5": ([*FIT, "--clf", "logreg", "--features", str(yamls["empty"])], "error", "cannot open feature file"),
        "cache info unknown key": (["cache", "info", "ffff"], "error", "no cache entry matches"),
        "report without records": (["report"], "error", "no run records"),
        "unknown command": (["fitt"], "error", "No such command"),
        "missing pipeline file": (["run", str(root / "nope.yaml")], "error", "nope.yaml"),
    }
    for name, path in yamls.items():
        table[f"pipeline: {name}"] = (["run", str(path), "--dry-run"], "error", path.name)
    return table


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Case, object]]:
    """Every case run once, three at a time, each in its own featx process."""
    root = tmp_path_factory.mktemp("bad-input")
    table = cases(root)
    dirs = {
        "FEATX_CACHE_DIR": str(root / "features"),
        "FEATX_REPORTS_DIR": str(root / "reports"),
        "FEATX_DATA_DIR": str(root / "data"),
        "HF_HOME": str(root / "hf"),
    }
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = dict(zip(table, pool.map(lambda args: run_featx(*args, **dirs), (case[0] for case in table.values()))))
    return {name: (table[name], results[name]) for name in table}


NAMES = [
    "unknown backbone",
    "unknown dataset",
    "imagefolder without a path",
    "missing image folder",
    "empty image folder",
    "empty class folders",
    "non-image files only",
    "a file for a folder",
    "single-class folder",
    "corrupt images",
    "corrupt images, --skip-bad",
    "mixed sizes and modes",
    "spaces and non-ASCII names",
    "limit 0",
    "bad mean",
    "unknown precision",
    "bad shard",
    "unknown classifier",
    "C grid not numbers",
    "C grid logspace short",
    "C grid negative",
    "C grid empty",
    "C grid infinite",
    "k grid zero",
    "k grid fraction",
    "unknown grid parameter",
    "grid without a value",
    "cv of 1",
    "missing features",
    "features not HDF5",
    "cache info unknown key",
    "report without records",
    "unknown command",
    "missing pipeline file",
    *(
        f"pipeline: {name}"
        for name in (
            "unknown key",
            "wrong type",
            "wrong option type",
            "yaml syntax",
            "empty",
            "unknown backbone",
            "unknown classifier",
            "bad grid",
            "a list",
        )
    ),
]


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_is_one_clear_line_or_works(outcomes, name: str) -> None:
    (args, expected, text), result = outcomes[name]
    if expected == "error":
        assert_one_line_error(result, text)
    else:
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr and text in result.stdout + result.stderr


def test_every_case_is_listed(tmp_path: Path) -> None:
    assert sorted(cases(tmp_path)) == sorted(NAMES)
