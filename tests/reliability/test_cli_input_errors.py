"""Input errors exit 2 with one line (README: 2 = usage or input error): a malformed or oversized
import file, an unknown run id; stored strings reach the terminal with control characters
escaped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _hostile import cli, meshlab, one_error_line, stored_run

from meshlab.formats import export_run


def test_readme_names_exit_code_2_for_input_errors() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "| 2 | usage or input error" in readme


@pytest.mark.parametrize("content", [b'{"hello": "world"}', b'{"RunType": "HTTP"', b"\xff\xfe",
                                     b"", b"a: [unclosed"])
def test_malformed_import_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                       content: bytes) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    code, _, err = cli(capsys, "import", str(bad), "--store", str(tmp_path / "s.duckdb"))
    assert code == 2
    assert str(bad) in one_error_line(err)


def test_show_and_export_of_an_unknown_run_exit_2(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    stored_run(db)
    for args in (("show", "no-such-run"), ("export", "no-such-run", "--format", "csv")):
        proc = meshlab(*args, "--store", str(db))
        assert proc.returncode == 2
        assert "no-such-run" in one_error_line(proc.stderr)


def test_import_size_limit_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    with big.open("wb") as f:            # a valid document padded past 64 MiB
        f.write(b'{"RunType": "HTTP"}')
        f.truncate((64 << 20) + 1)
    code, _, err = cli(capsys, "import", str(big), "--store", str(tmp_path / "s.duckdb"))
    assert code == 2 and "64 MiB" in one_error_line(err)


def test_import_alias_bomb_is_refused_in_time(tmp_path: Path) -> None:
    """Nine levels of nine aliases are 387 million values once expanded: the old code walked
    them (json.dumps of an excerpt) for ever. A child process, so a regression times out."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    code = ("import sys\nfrom meshlab.errors import OutputParseError\n"
            "from meshlab.formats import import_results\n"
            "try:\n    import_results(sys.argv[1])\nexcept OutputParseError as exc:\n"
            "    print(exc)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(bomb)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "values" in proc.stdout


HOSTILE_NAME = "p\x1b[2J\x1b]0;owned\x07\u202etxt.exe\x00[bold]x"


def test_stored_strings_are_escaped_on_the_terminal(capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    result = stored_run(db, profile=HOSTILE_NAME, mesh="m\x1b[31m\u202e")
    for args in (("runs",), ("show", result.run_id)):
        code, out, err = cli(capsys, *args, "--store", str(db))
        assert code == 0, err
        for raw in ("\x1b", "\x07", "\u202e", "\x00"):
            assert raw not in out, (args, raw)
        assert "\\x1b" in out and "\\u202e" in out, (args, out)
    code, out, _ = cli(capsys, "show", result.run_id, "--store", str(db))
    assert "[bold]x" in out                    # rich markup in a name is printed as typed
    code, out, _ = cli(capsys, "runs", "--json", "--store", str(db))
    assert json.loads(out.splitlines()[0])["profile"] == HOSTILE_NAME    # JSON keeps it exact


def test_import_messages_escape_what_the_document_says(capsys: pytest.CaptureFixture[str],
                                                       tmp_path: Path) -> None:
    doc = json.loads(export_run(stored_run(tmp_path / "a.duckdb"), "fortio"))
    doc["RunType"] = "HTTP"
    path = tmp_path / "evil\x1b[31m.json"
    path.write_text(json.dumps(doc))
    code, out, err = cli(capsys, "import", str(path), "--store", str(tmp_path / "b.duckdb"))
    assert code == 0, err
    assert "\x1b" not in out and "\\x1b" in out
