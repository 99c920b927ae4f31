"""Bad input on the command line: exit code 2, one ``error:`` line naming the fix, no
traceback, and nothing written."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from typer.testing import CliRunner

from cellbench.cli import app
from cellbench.schema import feature_columns

runner = CliRunner()
TRAIN = [
    "train",
    "--model",
    "cwa-msn",
    "--preset",
    "tiny",
    "--data",
    "synthetic-bray",
    "--size",
    "tiny",
    "--quiet",
]
EMBED = ["embed", "--model", "pixel-stats", "--data", "synthetic", "--size", "tiny", "--quiet"]


def _embeddings(tmp: Path) -> tuple[Path, Path]:
    ids = [f"gene-001_1_A{i:02d}" for i in range(40)]
    emb = pl.DataFrame({"well_id": ids}).hstack(
        pl.DataFrame(
            np.random.default_rng(0).normal(size=(40, 300)).astype(np.float32),
            schema=feature_columns(300),
        )
    )
    path = tmp / "emb.parquet"
    emb.write_parquet(path, compression="uncompressed", statistics=False)
    meta = tmp / "meta.csv"
    meta.write_text("well_id\n" + "\n".join(ids) + "\n")
    return path, meta


def corrupt_pages(tmp: Path) -> list[str]:
    """Data pages overwritten, footer (schema) intact: the schema reads, the values do not."""
    emb, meta = _embeddings(tmp)
    data = bytearray(emb.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little") + 8
    rng = np.random.default_rng(1)
    start, end = 4, len(data) - footer
    data[start:end] = rng.integers(0, 256, end - start, dtype=np.uint8).tobytes()
    emb.write_bytes(bytes(data))
    return [
        "evaluate",
        "--embeddings",
        str(emb),
        "--metadata",
        str(meta),
        "--out",
        str(tmp / "out"),
        "--quiet",
    ]


def evaluate_out_under_file(tmp: Path) -> list[str]:
    emb, meta = _embeddings(tmp)
    (tmp / "afile").write_text("x")
    return [
        "evaluate",
        "--embeddings",
        str(emb),
        "--metadata",
        str(meta),
        "--out",
        str(tmp / "afile" / "out"),
    ]


def evaluate_out_read_only(tmp: Path) -> list[str]:
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    emb, meta = _embeddings(tmp)
    locked = tmp / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    return [
        "evaluate",
        "--embeddings",
        str(emb),
        "--metadata",
        str(meta),
        "--out",
        str(locked / "out"),
    ]


def random_checkpoint(tmp: Path) -> list[str]:
    (tmp / "weights.pt").write_bytes(np.random.default_rng(2).bytes(4096))
    return [
        "embed",
        "--model",
        "vit-imagenet",
        "--checkpoint",
        str(tmp / "weights.pt"),
        "--data",
        "synthetic",
        "--size",
        "tiny",
        "--out",
        str(tmp / "e"),
        "--quiet",
    ]


def _resume_with(tmp: Path, state) -> list[str]:
    run = tmp / "run"
    run.mkdir()
    torch.save(state, run / "checkpoint.pt")
    return [*TRAIN, "--out", str(run), "--resume"]


def wells_random_bytes(tmp: Path) -> list[str]:
    folder = tmp / "folder"
    folder.mkdir()
    (folder / "wells.csv").write_bytes(np.random.default_rng(3).bytes(2048))
    return ["data", "info", "folder", "--data-dir", str(folder)]


def folder_of_rgb(tmp: Path) -> list[str]:
    from PIL import Image

    folder = tmp / "rgb"
    folder.mkdir()
    Image.fromarray(
        np.random.default_rng(4).integers(0, 256, (16, 16, 3), dtype=np.uint8), mode="RGB"
    ).save(folder / "a.png")
    pl.DataFrame(
        {
            "well_id": ["P_A01"],
            "batch": ["b"],
            "plate": ["P"],
            "well": ["A01"],
            "perturbation": ["DMSO"],
            "perturbation_type": ["control"],
            "concentration": [0.0],
            "is_control": [True],
            "site": [1],
            "file_DNA": ["a.png"],
        }
    ).write_csv(folder / "wells.csv")
    return ["data", "info", "folder", "--data-dir", str(folder)]


def existing_file(tmp: Path, command: list[str]) -> list[str]:
    (tmp / "taken.parquet").write_text("x")
    return [*command, "--out", str(tmp / "taken.parquet")]


CASES = {
    "corrupt parquet pages": corrupt_pages,
    "evaluate --out under a file": evaluate_out_under_file,
    "evaluate --out read-only": evaluate_out_read_only,
    "embed --out under a file": lambda t: (
        (t / "afile").write_text("x") and [*EMBED, "--out", str(t / "afile" / "e")]
    ),
    "train --out under a file": lambda t: (
        (t / "afile").write_text("x") and [*TRAIN, "--out", str(t / "afile" / "r")]
    ),
    "data show --rows 0": lambda t: [
        "data",
        "show",
        "synthetic-bray",
        "--out",
        str(t / "m.png"),
        "--rows",
        "0",
    ],
    "data show --rows -3": lambda t: [
        "data",
        "show",
        "synthetic-bray",
        "--out",
        str(t / "m.png"),
        "--rows",
        "-3",
    ],
    "data show --cols 0": lambda t: [
        "data",
        "show",
        "synthetic-bray",
        "--out",
        str(t / "m.png"),
        "--cols",
        "0",
    ],
    "data show --out under a file": lambda t: (
        (t / "afile").write_text("x")
        and ["data", "show", "synthetic-bray", "--out", str(t / "afile" / "m.png")]
    ),
    "data generate --out under a file": lambda t: (
        (t / "afile").write_text("x")
        and [
            "data",
            "generate",
            "synthetic-bray",
            "--size",
            "tiny",
            "--out",
            str(t / "afile" / "screen"),
        ]
    ),
    "run --device foo": lambda t: [
        "run",
        "--model",
        "oracle",
        "--preset",
        "tiny",
        "--device",
        "foo",
        "--quiet",
    ],
    "vit-imagenet random-bytes checkpoint": random_checkpoint,
    "embed --device foo": lambda t: [*EMBED, "--out", str(t / "e"), "--device", "foo"],
    "train --device foo": lambda t: [*TRAIN, "--out", str(t / "r"), "--device", "foo"],
    "embed --device cuda:99": lambda t: [*EMBED, "--out", str(t / "e"), "--device", "cuda:99"],
    "train --device cuda:99": lambda t: [*TRAIN, "--out", str(t / "r"), "--device", "cuda:99"],
    "resume a list": lambda t: _resume_with(t, [1, 2, 3]),
    "resume without config": lambda t: _resume_with(t, {"model": "cwa-msn", "seed": 0, "step": 3}),
    "wells.csv of random bytes": wells_random_bytes,
    "train --out existing file": lambda t: existing_file(t, TRAIN),
    "data info --data-dir without a screen": lambda t: (
        (t / "empty").mkdir()
        or ["data", "info", "synthetic-bray", "--size", "tiny", "--data-dir", str(t / "empty")]
    ),
    "folder of RGB images": folder_of_rgb,
    "data check --data-dir absent": lambda t: [
        "data",
        "check",
        "synthetic-bray",
        "--data-dir",
        str(t / "absent"),
    ],
    "embed --out existing file": lambda t: existing_file(t, EMBED[:-1] + ["--quiet"]),
}


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_exits_2_with_one_error_line_and_writes_nothing(tmp_path, case):
    work = tmp_path / "work"
    work.mkdir()
    args = CASES[case](work)
    before = _tree(work)
    res = runner.invoke(app, args)
    assert "Traceback" not in res.output
    assert res.exit_code == 2, (res.output, res.exception)
    assert isinstance(res.exception, SystemExit), repr(res.exception)
    assert "error:" in res.output, res.output
    assert _tree(work) == before
    assert not [p for p in work.rglob(".*") if p.is_dir()]  # no temporary folder left either


def test_cuda_without_cuda_is_a_clear_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    for args in (
        [*EMBED, "--out", str(tmp_path / "e"), "--device", "cuda"],
        [*TRAIN, "--out", str(tmp_path / "r"), "--device", "cuda"],
    ):
        res = runner.invoke(app, args)
        assert res.exit_code == 2 and "error:" in res.output and "CUDA" in res.output, (
            res.output,
            res.exception,
        )
    assert not any(tmp_path.iterdir())


def _checkpoint_cases(tmp: Path) -> dict[str, Path]:
    from fractions import Fraction

    folder = tmp / "ckpt-folder"
    folder.mkdir()
    pickled = tmp / "pickled.pt"
    torch.save({"model": "cwa-msn", "state_dict": {}, "extra": Fraction(1, 2)}, pickled)
    empty = tmp / "empty.pt"
    empty.write_bytes(b"")
    garbage = tmp / "garbage.pt"
    garbage.write_bytes(np.random.default_rng(5).bytes(4096))
    return {"folder": folder, "pickled": pickled, "empty": empty, "garbage": garbage}


@pytest.mark.parametrize("kind", ["folder", "pickled", "empty", "garbage"])
def test_checkpoint_errors_are_plain_and_name_the_problem(tmp_path, kind):
    path = _checkpoint_cases(tmp_path)[kind]
    res = runner.invoke(
        app,
        [
            *EMBED[:2],
            "cwa-msn",
            *EMBED[3:],
            "--checkpoint",
            str(path),
            "--out",
            str(tmp_path / "e"),
        ],
    )
    text = " ".join(res.output.split())
    assert res.exit_code == 2 and isinstance(res.exception, SystemExit), (res.output, res.exception)
    assert (
        "weights_only" not in text
        and "\x1b" not in res.output
        and "will likely succeed" not in text
    ), text
    assert str(path) in text.replace(" ", "") or path.name in text
    expected = {
        "folder": "is a folder",
        "pickled": "Python objects",
        "empty": "0 bytes",
        "garbage": "not a PyTorch",
    }[kind]
    assert expected in text, text


def test_a_table_with_no_rows_is_reported_as_empty(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "wells.csv").write_text(
        "well_id,batch,plate,well,perturbation,perturbation_type,concentration,is_control,site,file_DNA\n"
    )
    res = runner.invoke(app, ["data", "info", "folder", "--data-dir", str(folder)])
    assert res.exit_code == 2 and isinstance(res.exception, SystemExit), (res.output, res.exception)
    assert "empty" in res.output and "no rows" in " ".join(res.output.split()), res.output
