"""`meshlab export --out` never destroys data: not the store, not a DuckDB file, not an existing
file without --force, not through a symlink; a failed write leaves the old file whole, and every
refusal is one error line with exit code 2."""

from __future__ import annotations

import os
import resource
import subprocess
from pathlib import Path

import duckdb
import pytest
from _hostile import cli, meshlab, meshlab_argv, one_error_line, stored_run

from meshlab.store import Store

RUN_ID = "20261122T100000-aaaaaa"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "store.duckdb"
    stored_run(path, RUN_ID)
    return path


def _intact(db: Path) -> None:
    assert Store(db, read_only=True).load(RUN_ID).run_id == RUN_ID


def test_export_over_its_own_store_is_refused_and_the_store_survives(db: Path) -> None:
    # the reproduction of the issue, as a user's shell runs it
    proc = meshlab("export", RUN_ID, "--format", "csv", "--out", str(db), "--store", str(db))
    assert proc.returncode == 2
    assert "store" in one_error_line(proc.stderr)
    _intact(db)
    proc = meshlab("export", RUN_ID, "--format", "csv", "--out", str(db), "--store", str(db),
                   "--force")
    assert proc.returncode == 2
    _intact(db)


def test_any_duckdb_file_is_refused_even_with_force(capsys: pytest.CaptureFixture[str],
                                                     db: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    duckdb.connect(str(other)).execute("CREATE TABLE t AS SELECT 42 AS answer").close()
    before = other.read_bytes()
    for extra in ((), ("--force",)):
        code, _, err = cli(capsys, "export", RUN_ID, "--format", "fortio", "--out", str(other),
                           "--store", str(db), *extra)
        assert code == 2 and "DuckDB" in one_error_line(err)
    assert other.read_bytes() == before


def test_existing_file_needs_force_and_is_replaced_whole(capsys: pytest.CaptureFixture[str],
                                                         db: Path, tmp_path: Path) -> None:
    out = tmp_path / "run.csv"
    out.write_text("keep me\n")
    code, _, err = cli(capsys, "export", RUN_ID, "--format", "csv", "--out", str(out),
                       "--store", str(db))
    assert code == 2 and "--force" in one_error_line(err)
    assert out.read_text() == "keep me\n"
    code, _, err = cli(capsys, "export", RUN_ID, "--format", "csv", "--out", str(out),
                       "--store", str(db), "--force")
    assert code == 0, err
    assert out.read_text().startswith("run_id,") and RUN_ID in out.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.csv", "store.duckdb"]  # no temp


def test_new_file_is_written(capsys: pytest.CaptureFixture[str], db: Path,
                             tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    code, _, err = cli(capsys, "export", RUN_ID, "--format", "fortio", "--out", str(out),
                       "--store", str(db))
    assert code == 0, err
    assert '"DurationHistogram"' in out.read_text()


def test_symlink_target_is_refused(capsys: pytest.CaptureFixture[str], db: Path,
                                   tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    link = tmp_path / "link.csv"
    link.symlink_to(victim)
    dangling = tmp_path / "dangling.csv"
    dangling.symlink_to(tmp_path / "nowhere" / "x")
    for target in (link, dangling):
        code, _, err = cli(capsys, "export", RUN_ID, "--format", "csv", "--out", str(target),
                           "--store", str(db), "--force")
        assert code == 2 and "symbolic link" in one_error_line(err)
    assert victim.read_text() == "precious\n"


@pytest.mark.parametrize("case", ["directory", "missing-directory", "dev-full", "long-name"])
def test_unwritable_out_is_one_line_exit_2(capsys: pytest.CaptureFixture[str], db: Path,
                                           tmp_path: Path, case: str) -> None:
    out = {"directory": str(tmp_path), "missing-directory": str(tmp_path / "no" / "run.csv"),
           "dev-full": "/dev/full", "long-name": str(tmp_path / ("x" * 300 + ".csv"))}[case]
    code, _, err = cli(capsys, "export", RUN_ID, "--format", "csv", "--out", out,
                       "--store", str(db), "--force")
    assert code == 2
    assert one_error_line(err).startswith("error: --out: ")


def _limit_file_size() -> None:   # in the child: writes past 2 KiB fail with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))


def test_failed_write_leaves_the_old_file_and_no_temp_file(db: Path, tmp_path: Path) -> None:
    """A disk that fills up mid-write (here: a file size limit, EFBIG) must not leave a torn
    file: the old content stays, the temporary file is removed, one error line, exit 2."""
    out = tmp_path / "run.json"
    out.write_text("old export\n")
    proc = subprocess.run([*meshlab_argv(), "export", RUN_ID, "--format", "fortio", "--out",
                           str(out), "--store", str(db), "--force"], capture_output=True,
                          text=True, timeout=120, preexec_fn=_limit_file_size,
                          env={**os.environ, "COLUMNS": "200"}, check=False)
    assert proc.returncode == 2
    assert "cannot write" in one_error_line(proc.stderr)
    assert out.read_text() == "old export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json", "store.duckdb"]
