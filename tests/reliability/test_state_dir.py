"""Files that hold secrets or steer teardown are private from the first byte: state and work
directories 0700, key files created 0600, no default state directory another user owns;
`meshlab run` honours MESHLAB_STATE_DIR (test_signals); output reaches a pipe line by line;
experiments whose owner process is gone are marked aborted when a store is opened."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from _signal_helpers import ROOT, env

from meshlab.errors import PlaygroundError
from meshlab.playground.certs import CertificateAuthority
from meshlab.playground.playground import Playground
from meshlab.store import Store

pytestmark = pytest.mark.timeout(90)

FORTIO_RESULT = ROOT / "tests" / "fixtures" / "fortio" / "fortio-README-rest-run-http-result.json"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_zero() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_key_files_are_never_readable_by_others(tmp_path: Path, umask_zero: None,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # chmod after writing leaves a window; with no chmod at all, the mode must already be 0600
    monkeypatch.setattr(Path, "chmod", lambda self, mode, **kw: None)
    monkeypatch.setattr(os, "chmod", lambda path, mode, **kw: None)
    files = CertificateAuthority(tmp_path / "certs").issue("backend")
    assert _mode(files.key) == 0o600
    assert _mode(files.bundle) == 0o600
    assert _mode(tmp_path / "certs") == 0o700


def test_state_and_work_directories_are_private(tmp_path: Path, umask_zero: None) -> None:
    state = tmp_path / "state"
    pg = Playground(mesh="envoy+mtls", state_dir=state).start()
    try:
        assert _mode(state) == 0o700
        assert _mode(pg.workdir) == 0o700
        assert _mode(pg.pidfile) == 0o600
        keys = list(pg.workdir.glob("certs/*.key"))
        assert keys and all(_mode(k) == 0o600 for k in keys)
    finally:
        pg.stop()


@pytest.fixture
def default_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default state directory's base (<tmp>/meshlab-<uid>) with <tmp> = tmp_path."""
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path / f"meshlab-{os.getuid()}"


def test_default_state_directory_is_created_private(default_base: Path) -> None:
    pg = Playground(mesh="none").start()
    try:
        assert pg.state_dir == default_base / "playground"
        assert _mode(default_base) == 0o700 and _mode(pg.state_dir) == 0o700
    finally:
        pg.stop()


@pytest.mark.skipif(os.getuid() != 0, reason="giving a directory to another user needs root")
def test_default_state_directory_of_another_user_is_refused(default_base: Path) -> None:
    default_base.mkdir(mode=0o777)
    os.chown(default_base, 65534, 65534)          # created first by someone else (nobody)
    pg = Playground(mesh="none")
    with pytest.raises(PlaygroundError, match="belongs to uid 65534"):
        pg.start()
    assert pg.processes == [] or all(p.returncode is not None for p in pg.processes)
    assert list(default_base.iterdir()) == []


def test_default_state_directory_that_is_a_symlink_is_refused(default_base: Path,
                                                              tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    default_base.symlink_to(elsewhere)
    pg = Playground(mesh="none")
    with pytest.raises(PlaygroundError, match="not a directory"):
        pg.start()
    assert list(elsewhere.iterdir()) == []


_KILLED_AFTER_IMPORT = """
import os, signal, sys
from meshlab.cli import main
main(["import", sys.argv[1], "--store", sys.argv[2]])
os.kill(os.getpid(), signal.SIGKILL)      # killed before the interpreter flushes anything
"""


def test_import_output_reaches_a_pipe_before_a_kill(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-c", _KILLED_AFTER_IMPORT, str(FORTIO_RESULT),
                        str(tmp_path / "m.duckdb")], capture_output=True, text=True,
                       timeout=60, env=env(tmp_path / "state"), cwd=tmp_path)
    assert r.returncode == -9
    assert "imported " in r.stdout and "stored in" in r.stdout, r.stderr


_EXPERIMENT_THEN_DIE = """
import os, sys
from meshlab.store import Store
print(Store(sys.argv[1]).new_experiment(name="doomed", profile={}), flush=True)
os._exit(0)                               # gone without finishing its experiment
"""


def test_experiment_of_a_gone_process_is_marked_aborted_on_open(tmp_path: Path) -> None:
    db = tmp_path / "m.duckdb"
    store = Store(db)
    mine = store.new_experiment(name="alive", profile={})     # owned by this live process
    r = subprocess.run([sys.executable, "-c", _EXPERIMENT_THEN_DIE, str(db)],
                       capture_output=True, text=True, timeout=60, env=env(tmp_path / "s"))
    doomed = r.stdout.strip()
    assert r.returncode == 0 and doomed.startswith("exp-"), r.stderr
    before = Store(db, read_only=True).experiments().set_index("experiment_id")["status"]
    assert before[doomed] == "running"
    after = Store(db).experiments().set_index("experiment_id")["status"]
    assert after[doomed] == "aborted"
    assert after[mine] == "running"
