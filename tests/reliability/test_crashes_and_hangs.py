"""Hostile input that used to crash or hang featx: YAML bombs and oversized documents,
cache attributes of the wrong type, files in another encoding, seeds out of range, run
records of the wrong shape, addresses where no Dask scheduler answers, and named pipes
where files are expected. Each is one line and exit status 2 (or is skipped and counted),
within a timeout that guards the test against a hang."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import h5py
import pytest
from click.testing import CliRunner

import featx
from featx.cli import main
from featx.core.errors import CacheError, ReportError
from featx.fitting.records import load_record, scan_records
from tests.fakes import write_image_folder
from tests.reliability.support import TINY_ARGS, assert_one_line_error
from tests.reliability.support import featx as run_featx

PIPELINE = "dataset: digits\nbackbones: [test_resnet]\nclassifiers: [logreg]\n"
#: an error line is short: a few hundred characters of any value, whatever the input
LONGEST_LINE = 1000


def short_error(result: object, *expected: str) -> str:
    line = assert_one_line_error(result, *expected)
    assert len(line) < LONGEST_LINE, len(line)
    return line


# --------------------------------------------------------------------------- YAML: limits


def alias_bomb(depth: int) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, depth)]
    return "\n".join([*lines, f"dataset: *a{depth - 1}", "backbones: [test_resnet]", "classifiers: [logreg]"]) + "\n"


YAML_CASES = {
    "alias bomb, depth 7": (alias_bomb(7), "expands to more than"),
    "alias bomb, depth 9": (alias_bomb(9), "expands to more than"),
    "nested 5000 deep": ("dataset: " + "[" * 5000 + "]" * 5000 + "\nbackbones: [x]\nclassifiers: [logreg]\n", "nests deeper than"),
    "deep through aliases": (
        "a: &a " + "[" * 30 + "1" + "]" * 30 + "\ndataset: " + "[" * 30 + "*a" + "]" * 30 + "\n",
        "nests deeper than",
    ),
    "an alias inside itself": ("dataset: &a [1, *a]\nbackbones: [x]\nclassifiers: [logreg]\n", "refers to a value that contains it"),
    "a value of 900 kB": ("dataset: " + "x" * 900_000 + "\nbackbones: [test_resnet]\nclassifiers: [logreg]\n", "unknown dataset"),
    "a file of 2 MB": ("# " + "padding " * 250_000 + "\n" + PIPELINE, "bytes"),
    "a syntax error on a long line": ("dataset: [" + "x, " * 100_000 + "\n" + PIPELINE, "not valid YAML"),
    "a control character": ("\x1f" + PIPELINE, "not valid YAML"),
}


@pytest.mark.parametrize("name", list(YAML_CASES))
def test_a_pipeline_file_that_expands_too_far_is_one_short_line(tmp_path: Path, name: str) -> None:
    text, expected = YAML_CASES[name]
    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    short_error(run_featx("run", str(path), "--dry-run", timeout=120), expected)


# --------------------------------------------------------------------------- encodings


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param("description: café\n".encode("latin-1") + PIPELINE.encode(), "byte 0xe9 at line 1, column 17", id="Latin-1"),
        pytest.param(("description: café\n" + PIPELINE).encode("utf-16"), "UTF-16", id="UTF-16"),
        pytest.param(PIPELINE.encode() + b"description: \x89PNG\x00\xff\n", "not UTF-8", id="binary"),
    ],
)
def test_a_pipeline_file_that_is_not_utf8_says_so(tmp_path: Path, data: bytes, expected: str) -> None:
    path = tmp_path / "encoded.yaml"
    path.write_bytes(data)
    short_error(CliRunner().invoke(main, ["run", str(path), "--dry-run"]), "is not UTF-8", expected)


def test_a_utf8_pipeline_file_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + f"description: café 猫\n{PIPELINE}".encode())
    result = CliRunner().invoke(main, ["run", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert featx.load_pipeline(path).description == "café 猫"


# --------------------------------------------------------------------------- seeds out of range


def seeded_pipeline(tmp_path: Path, section: str) -> Path:
    path = tmp_path / f"seed-{section}.yaml"
    sections = {
        "dataset": "dataset: {name: digits, seed: 99999999999}\nbackbones: [test_resnet]\nclassifiers: [logreg]\n",
        "fit": PIPELINE + "fit: {seed: 99999999999}\n",
        "classifier": "dataset: digits\nbackbones: [test_resnet]\nclassifiers: [{name: logreg, seed: 99999999999}]\n",
        "pca": PIPELINE + "pca: {seed: 99999999999}\n",
    }
    path.write_text(sections[section])
    return path


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["fit", "--features", "x.h5", "--clf", "logreg", "--seed", "99999999999"], "--seed", id="fit"),
        pytest.param(["extract", *TINY_ARGS, "--seed", "99999999999"], "--seed", id="extract"),
        pytest.param(["pca", "--features", "x.h5", "--seed", str(2**32)], "--seed", id="pca 2**32"),
        pytest.param(["fit", "--features", "x.h5", "--clf", "logreg", "--seed", "-1"], "--seed", id="fit, negative"),
    ],
)
def test_a_seed_out_of_range_on_the_command_line_is_one_line(args: list[str], expected: str) -> None:
    short_error(CliRunner().invoke(main, args), expected, "4294967295" if "-1" not in args else "at least 0")


@pytest.mark.parametrize("section", ["dataset", "fit", "classifier", "pca"])
@pytest.mark.parametrize("dry_run", [True, False], ids=["--dry-run", "run"])
def test_a_seed_out_of_range_in_a_pipeline_stops_it_before_any_task(tmp_path: Path, section: str, dry_run: bool) -> None:
    path = seeded_pipeline(tmp_path, section)
    result = CliRunner().invoke(main, ["run", str(path), *(["--dry-run"] if dry_run else [])])
    short_error(result, "seed", "4294967295")
    assert not Path(os.environ["FEATX_CACHE_DIR"]).exists()


# --------------------------------------------------------------------------- run records of the wrong shape


def fitted(feature_file) -> featx.RunRecord:
    path = feature_file(n_train=30, n_test=15, dim=4)
    return featx.fit(path, clf="logreg", grid={"C": [1.0]}, cv=2, n_jobs=1)


def damaged_copy(record: featx.RunRecord, name: str, change) -> Path:
    text = record.path().read_text()
    target = record.path().with_name(f"{name}.json")
    target.write_text(change(text))
    return target


RECORD_DAMAGE = {
    "test_accuracy text": (lambda t: json.dumps({**json.loads(t), "test_accuracy": "abc"}), "test_accuracy"),
    "truncated": (lambda t: t[: len(t) // 2], "cannot read run record"),
    "another schema version": (lambda t: t.replace('"schema_version": 1', '"schema_version": 7'), "schema version 7"),
    "a JSON list": (lambda t: "[1, 2, 3]", "not a run record"),
    "confusion matrix of the wrong shape": (
        lambda t: json.dumps({**json.loads(t), "confusion_matrix": [[1]]}),
        "confusion_matrix",
    ),
    "accuracy above one": (lambda t: json.dumps({**json.loads(t), "test_accuracy": 12.5}), "test_accuracy"),
}


def test_bad_records_are_skipped_by_name_and_listed_on_the_page(feature_file) -> None:
    record = fitted(feature_file)
    written = {name: damaged_copy(record, name.replace(" ", "-"), change) for name, (change, _) in RECORD_DAMAGE.items()}
    scan = scan_records()
    assert [r.run_key for r in scan.records] == [record.run_key]
    reasons = {item.path: item.reason for item in scan.skipped}
    for name, (_, expected) in RECORD_DAMAGE.items():
        assert expected in reasons[written[name]], (name, reasons[written[name]])
        with pytest.raises(ReportError, match=str(written[name].name)):
            load_record(written[name])
    result = CliRunner().invoke(main, ["report"])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert f"{len(RECORD_DAMAGE)} unreadable record file(s) skipped" in result.stdout
    page = Path(result.stdout.strip().splitlines()[-1]).read_text()
    for path in written.values():
        assert path.name in page


def test_only_bad_records_is_one_line_naming_them(feature_file) -> None:
    record = fitted(feature_file)
    record.path().write_text('{"schema_version": 1, "test_accuracy": "abc"}')
    short_error(CliRunner().invoke(main, ["report"]), "no run records", "1 file(s) there are not readable records")


# --------------------------------------------------------------------------- schedulers that are not Dask


@contextlib.contextmanager
def server(kind: str) -> Iterator[int]:
    """A local server that is not a Dask scheduler; yields its port."""
    if kind == "http":
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield httpd.server_address[1]
        finally:
            httpd.shutdown()
            httpd.server_close()
        return
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            if kind == "garbage":  # answers at once, in another protocol, and hangs up
                connection.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n<html>not dask</html>")
                connection.close()
            else:  # "silent": accepts and never says a word
                accepted.append(connection)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        for connection in accepted:
            connection.close()


@pytest.mark.parametrize("kind", ["http", "silent", "garbage"])
def test_an_address_where_something_else_answers_is_one_line_within_the_deadline(feature_file, kind: str) -> None:
    pytest.importorskip("distributed")
    path = feature_file(n_train=30, n_test=15, dim=4)
    with server(kind) as port:
        address = f"tcp://127.0.0.1:{port}"
        result = run_featx("fit", "--features", str(path), "--clf", "logreg", "--cv", "2", "--scheduler", address, timeout=90)
    expected = "answers, but not as a Dask scheduler" if kind == "garbage" else "no Dask scheduler answered"
    short_error(result, address, expected)


def test_a_scheduler_file_that_names_no_address_is_one_line(feature_file, tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    path = feature_file(n_train=30, n_test=15, dim=4)
    scheduler_file = tmp_path / "scheduler.json"
    scheduler_file.write_text('{"type": "Scheduler"}')
    result = CliRunner().invoke(main, ["fit", "--features", str(path), "--clf", "logreg", "--scheduler", str(scheduler_file)])
    short_error(result, "not a Dask scheduler file")


# --------------------------------------------------------------------------- named pipes where files are expected


def test_a_named_pipe_among_the_images_is_skipped_and_counted(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "pets", classes=("cat", "dog"), per_class={"train": 4, "test": 2})
    os.mkfifo(root / "train" / "cat" / "pipe.jpg")
    os.mkfifo(tmp_path / "elsewhere.png")
    (root / "train" / "dog" / "link-to-pipe.png").symlink_to(tmp_path / "elsewhere.png")
    (root / "train" / "dog" / "dangling.png").symlink_to(tmp_path / "gone.png")
    (root / "test" / "cat" / "link-to-image.png").symlink_to(root / "train" / "cat" / "train_000.png")
    result = run_featx(
        "extract", "-b", "test_resnet", "--weights", "random", "--image-size", "32", "-d", f"imagefolder:{root}", timeout=180
    )
    assert result.returncode == 0, result.stderr
    assert "skipped 3 entries that are not a regular file" in result.stderr and "pipe.jpg" in result.stderr
    entry = Path(result.stdout.strip().splitlines()[-1])
    info = featx.cache.read_info(entry)
    assert {name: s.n_rows for name, s in info.splits.items()} == {"train": 8, "test": 5}  # the link to an image counts
    assert not list(entry.parent.glob("*.partial.h5"))


@pytest.mark.parametrize("where", ["pipeline file", "features", "run record"])
def test_a_named_pipe_given_as_a_file_is_one_line_or_skipped(feature_file, tmp_path: Path, where: str) -> None:
    if where == "pipeline file":
        os.mkfifo(tmp_path / "pipe.yaml")
        short_error(run_featx("run", str(tmp_path / "pipe.yaml"), timeout=60), "not a regular file")
    elif where == "features":
        os.mkfifo(tmp_path / "pipe.h5")
        short_error(run_featx("fit", "--features", str(tmp_path / "pipe.h5"), "--clf", "logreg", timeout=60), "not a regular file")
    else:
        fitted(feature_file)
        folder = Path(os.environ["FEATX_REPORTS_DIR"]) / "runs" / "synthetic"
        os.mkfifo(folder / "pipe.json")
        result = run_featx("report", "--no-pca", timeout=120)
        assert result.returncode == 0 and "pipe.json" in result.stderr, result.stderr


# --------------------------------------------------------------------------- the Python API


def test_a_cache_attribute_of_another_type_is_a_featx_error_in_the_python_api(feature_file) -> None:
    path = feature_file(n_train=30, n_test=15, dim=4)
    with h5py.File(path, "r+") as handle:
        handle.attrs["format_version"] = "one"
    with pytest.raises(CacheError, match="attribute format_version is 'one', expected a whole number"):
        featx.load_features(path)
    with pytest.raises(CacheError, match="format_version"):
        featx.fit(path, clf="logreg")
