"""README.md's shell examples are checked against the program: every ```console block is run in a
temporary directory (with the files the README defines in ```yaml file=NAME blocks) and its
output compared with what the README shows, so the README cannot drift from the program.

Conventions (see the README): `$ ` starts a command, the lines after it are its output (stdout
and stderr as a terminal shows them). A command ending in `&` runs in the background (its first
output lines are compared, it is stopped at the end); one with `# until Ctrl-C` is compared on
its first lines, then interrupted. `$ echo $?` shows the previous command's exit status.
Volatile parts are compared loosely: run and experiment ids, rule and bar lengths, spacing; in
a block opened as ```console numbers=any (measured numbers), every number. The loopback ports
the README names are replaced by free ones.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from meshlab.errors import ProfileError
from meshlab.profile import Profile

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BIN = Path(sys.executable).parent
COMMAND_TIMEOUT_S = 120.0
UNTIL_CTRL_C = "# until Ctrl-C"


@dataclass
class Command:
    line: str
    expected: list[str] = field(default_factory=list)


@dataclass
class Block:
    info: str
    lines: list[str]
    heading: str
    index: int

    @property
    def words(self) -> list[str]:
        return self.info.split()

    @property
    def file_name(self) -> str | None:
        return next((w[5:] for w in self.words if w.startswith("file=")), None)

    def commands(self) -> list[Command]:
        out: list[Command] = []
        for line in self.lines:
            if line.startswith("$ "):
                out.append(Command(line[2:]))
            elif out:
                out[-1].expected.append(line)
            elif line.strip():
                raise AssertionError(f"README block {self.index}: output before a command")
        return out


def readme_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    heading = ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        if line.startswith("```"):
            info = line[3:].strip()
            j = i + 1
            while not lines[j].startswith("```"):
                j += 1
            blocks.append(Block(info, lines[i + 1:j], heading, len(blocks)))
            i = j
        i += 1
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))
SESSIONS = [b for b in BLOCKS if b.words[:1] == ["console"]]
FILES = [b for b in BLOCKS if b.file_name]
_PORT = re.compile(r"(?:127\.0\.0\.1:|--port )(\d{4,5})\b")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def normalise(text: str, *, numbers: bool) -> list[str]:
    """The comparable lines of an output: ids, bars and spacing made neutral."""
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)
    text = re.sub(r"\b(exp-)?\d{8}T\d{6}-[0-9a-f]{6}\b", "<id>", text)
    text = re.sub(r"━+", "━", text)
    text = re.sub(r"─+", "─", text)
    if numbers:
        text = re.sub(r"\d[\d,]*(\.\d+)?", "<n>", text)
    lines = (" ".join(line.split()) for line in text.splitlines())
    return [line for line in lines if line]


class Session:
    """A shell-like session over the README's console blocks, run in order on demand."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        ports = {int(p) for b in BLOCKS for p in _PORT.findall("\n".join(b.lines))}
        self.ports = {p: _free_port() for p in sorted(ports)}
        # `meshlab` is this checkout run by this interpreter, installed or not
        shim = workdir / ".bin"
        shim.mkdir()
        (shim / "meshlab").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m meshlab "$@"\n')
        (shim / "meshlab").chmod(0o755)
        path = os.pathsep.join([str(shim), str(BIN), os.environ.get("PATH", "")])
        self.env = {**os.environ, "PATH": path,
                    "PYTHONPATH": str(ROOT), "COLUMNS": "200", "NO_COLOR": "1",
                    "MESHLAB_STORE": str(workdir / "meshlab.duckdb")}
        self.background: list[subprocess.Popen[str]] = []
        self.readers: dict[int, threading.Thread] = {}
        self.results: dict[int, list[tuple[str, list[str], list[str]]]] = {}
        self.raw: dict[str, str] = {}           # command -> its output, for `__main__`
        self.last_rc = 0
        for b in FILES:
            assert b.file_name is not None
            (workdir / b.file_name).write_text(self._in("\n".join(b.lines) + "\n"))

    def _in(self, text: str) -> str:
        for readme_port, port in self.ports.items():
            text = re.sub(rf"\b{readme_port}\b", str(port), text)
        return text

    def _out(self, text: str) -> str:
        for readme_port, port in self.ports.items():
            text = re.sub(rf"\b{port}\b", str(readme_port), text)
        return text

    def run_until(self, index: int) -> None:
        for b in SESSIONS:
            if b.index > index:
                break
            if b.index not in self.results:
                self.results[b.index] = [self._run(c, numbers="numbers=any" in b.words)
                                         for c in b.commands()]

    def _run(self, cmd: Command, *, numbers: bool) -> tuple[str, list[str], list[str]]:
        line = cmd.line.split(UNTIL_CTRL_C)[0].rstrip()
        if line == "echo $?":
            output = f"{self.last_rc}\n"
        elif line.endswith("&") or UNTIL_CTRL_C in cmd.line:
            output = self._start(line.rstrip("&").strip(), len(normalise("\n".join(
                cmd.expected), numbers=numbers)), stop=not line.endswith("&"))
        else:
            proc = subprocess.run(["bash", "-c", self._in(line)], cwd=self.workdir,
                                  env=self.env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True,
                                  timeout=COMMAND_TIMEOUT_S, check=False)
            self.last_rc = proc.returncode
            output = proc.stdout
        self.raw[cmd.line] = self._out(output)
        return (cmd.line, normalise("\n".join(cmd.expected), numbers=numbers),
                normalise(self._out(output), numbers=numbers))

    def _start(self, line: str, n_lines: int, *, stop: bool) -> str:
        """Start a long-running command; its output once it printed `n_lines` lines."""
        proc = subprocess.Popen(["bash", "-c", f"exec {self._in(line)}"], cwd=self.workdir,
                                env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.background.append(proc)
        got: list[str] = []

        def read() -> None:
            assert proc.stdout is not None
            for out_line in proc.stdout:
                got.append(out_line)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        self.readers[proc.pid] = reader
        deadline = time.monotonic() + 60
        while (len(normalise("".join(got), numbers=False)) < n_lines
               and time.monotonic() < deadline and proc.poll() is None):
            time.sleep(0.05)
        time.sleep(0.2)                   # a line printed right after the ones awaited
        if stop:
            self.stop(proc)
        return "".join(got[:n_lines]) if n_lines else ""

    def stop(self, proc: subprocess.Popen[str]) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)   # meshlab stops what it started on Ctrl-C
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        reader = self.readers.pop(proc.pid, None)
        if reader is not None:
            reader.join(5)
        if proc.stdout is not None and not reader_alive(reader):
            proc.stdout.close()

    def close(self) -> None:
        for proc in reversed(self.background):
            self.stop(proc)


def reader_alive(reader: threading.Thread | None) -> bool:
    return reader is not None and reader.is_alive()


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> object:
    s = Session(tmp_path_factory.mktemp("readme"))
    yield s
    s.close()


@pytest.mark.parametrize("block", SESSIONS, ids=[f"{b.index}-{b.heading[:30]}" for b in SESSIONS])
def test_readme_console_block_matches_the_program(block: Block, session: Session) -> None:
    session.run_until(block.index)
    for line, expected, actual in session.results[block.index]:
        assert actual == expected, (
            f"README ({block.heading}) `$ {line}` shows\n  " + "\n  ".join(expected)
            + "\nbut the program prints\n  " + "\n  ".join(actual))


def test_readme_shows_the_sessions_a_newcomer_follows() -> None:
    commands = [c.line for b in SESSIONS for c in b.commands()]
    assert "meshlab run bad.yaml" in commands
    assert any(c.startswith("meshlab echo") and c.endswith("&") for c in commands)
    assert any(c.startswith("meshlab run ") and "bad.yaml" not in c for c in commands)
    assert any(c.startswith("meshlab dashboard") for c in commands)
    first_hour = [b for b in SESSIONS if b.heading.lower().startswith("first hour")]
    assert first_hour, "README has a 'First hour' section with console sessions"


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.words[:1] == ["yaml"]],
                         ids=lambda b: f"{b.index}-{b.file_name or b.heading[:30]}")
def test_readme_profiles_are_what_the_text_says(block: Block, tmp_path: Path) -> None:
    """A README profile loads; the bad one fails (its errors are checked by its session)."""
    doc = yaml.safe_load("\n".join(block.lines))
    if not (isinstance(doc, dict) and "target" in doc):
        pytest.skip("not a profile")
    path = tmp_path / (block.file_name or "profile.yaml")
    path.write_text("\n".join(block.lines) + "\n")
    if path.name.startswith("bad"):
        with pytest.raises(ProfileError):
            Profile.load(path)
    else:
        assert Profile.load(path).name == doc["name"]


if __name__ == "__main__":
    # `PYTHONPATH=. python tests/test_readme.py`: run the README's sessions and print what the
    # program says, ready to paste into the README when an output changes on purpose.
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        runner = Session(Path(tmp))
        try:
            runner.run_until(len(BLOCKS))
        finally:
            runner.close()
        for b in SESSIONS:
            print(f"--- {b.heading} (block {b.index})")
            for c in b.commands():
                print(f"$ {c.line}")
                print("\n".join(ln.rstrip() for ln in runner.raw[c.line].splitlines()))
