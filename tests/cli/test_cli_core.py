"""The `meshlab` command line against the echo server and a DuckDB file: in this process, and as
a real subprocess where the process itself is what is tested (exit status, signals, a tty)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from meshlab.store import Store

SCRIPT = Path(sys.executable).parent / "meshlab"
SECRET = "Bearer cli-s3cr3t-value"
COOKIE = "sessionid-cli-s3cr3t"
JSON_KEYS = {"run_id", "status", "requested_rate_rps", "achieved_rate_rps", "requests", "errors",
             "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "uncorrected_p99_us"}


def meshlab(*args: str, env: dict[str, str] | None = None,
            timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """A real `meshlab` process: for what only a process shows (exit status, no traceback)."""
    argv = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "meshlab"]
    return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=timeout_s,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})


def meshlab_here(*args: str) -> subprocess.CompletedProcess[str]:
    """The same command in this process (no interpreter start and imports to pay for each
    run): its exit code and what it printed on stdout and stderr. Usable from module-scoped
    fixtures, where capsys is not."""
    from meshlab.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "200"
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved
    return subprocess.CompletedProcess(["meshlab", *args], code, out.getvalue(), err.getvalue())


def write_profile(path: Path, target: str, *, name: str = "cli", rates: str = "[200, 300]",
                  duration_s: float = 0.5, extra: str = "") -> Path:
    path.write_text(f"""\
name: {name}
target: {target}
loads: {{rate_rps: {rates}, connections: 2, duration_s: {duration_s}, warmup_s: 0,
        dataplane_warmup_s: 0}}
request:
  headers: {{Authorization: "{SECRET}", X-Trace: visible}}
  cookies: {{session: "{COOKIE}"}}
{extra}""", encoding="utf-8")
    return path


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The same CLI in-process (read-side commands: no need to pay an interpreter start)."""
    from meshlab.cli import main

    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def stored(echo_url: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]], subprocess.CompletedProcess[str]]:  # noqa: E501
    """One `meshlab run --json` of two runs, shared by the read-side tests."""
    tmp = tmp_path_factory.mktemp("cli")
    db = tmp / "m.duckdb"
    # ~10 % of 503s would make each run degraded: the profile's SLO allows up to 20 %
    prof = write_profile(tmp / "p.yaml", echo_url + "?status=503:10",
                         extra="slo: {error_rate: 0.2}\n")
    proc = meshlab_here("run", str(prof), "--store", str(db), "--json")
    return db, json_lines(proc.stdout), proc


def test_run_json_contract(stored: tuple[Path, list[dict[str, Any]],
                                         subprocess.CompletedProcess[str]]) -> None:
    db, lines, proc = stored
    assert proc.returncode == 0, proc.stderr
    assert len(lines) == 2
    for line in lines:
        assert set(line) >= JSON_KEYS
        assert line["status"] == "completed" and line["requests"] > 0
        assert line["unsent_requests"] <= 2 and line["warnings"] == []
        assert line["slo"]["pass"] is True and line["slo"]["source"] == "profile"
        assert line["slo"]["criteria"]["error_rate"]["limit"] == 0.2
        assert line["p50_us"] <= line["p90_us"] <= line["p99_us"] <= line["p999_us"]
        assert line["p999_us"] <= line["max_us"]
        assert 0 < line["errors"] < line["requests"]    # ~10 % 503s are counted, not raised
    assert [x["requested_rate_rps"] for x in lines] == [200.0, 300.0]
    assert sorted(Store(db).runs()["run_id"]) == sorted(x["run_id"] for x in lines)


def test_secrets_never_stored_or_printed(
        stored: tuple[Path, list[dict[str, Any]], subprocess.CompletedProcess[str]],
        capsys: pytest.CaptureFixture[str]) -> None:
    db, lines, proc = stored
    outputs = [proc.stdout, proc.stderr]
    for args in (["runs", "--json"], ["runs"], ["show", lines[0]["run_id"], "--json"],
                 ["show", lines[0]["run_id"]]):
        code, out, err = cli(capsys, *args, "--store", str(db))
        assert code == 0, err
        outputs += [out, err]
    text = "\n".join(outputs)
    assert "visible" in text                            # ordinary headers are echoed
    assert SECRET not in text and "cli-s3cr3t" not in text
    store = Store(db, read_only=True)
    stored_text = " ".join([*store.runs()["spec"], *store.runs()["context"],
                            *store.experiments()["profile"]])
    assert "<redacted>" in stored_text and "visible" in stored_text
    assert "cli-s3cr3t" not in stored_text
    assert b"cli-s3cr3t" not in db.read_bytes()


def test_runs_show_compare(
        stored: tuple[Path, list[dict[str, Any]], subprocess.CompletedProcess[str]],
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    db, lines, _ = stored
    ids = [x["run_id"] for x in lines]
    store = ("--store", str(db))
    runs = json_lines(cli(capsys, "runs", *store, "--json", "--limit", "1")[1])
    assert len(runs) == 1 and runs[0]["run_id"] in ids
    assert isinstance(runs[0]["spec"], dict)
    assert json_lines(cli(capsys, "runs", *store, "--json", "--mesh", "istio")[1]) == []
    monkeypatch.setenv("MESHLAB_STORE", str(db))
    listed = json_lines(cli(capsys, "runs", "--json")[1])
    assert sorted(r["run_id"] for r in listed) == sorted(ids)

    doc = json.loads(cli(capsys, "show", ids[0], *store, "--json")[1])
    assert doc["run_id"] == ids[0] and doc["status_codes"].keys() == {"200", "503"}
    assert doc["percentiles_us"]["corrected"]["99"] >= doc["percentiles_us"]["corrected"]["50"]
    assert doc["context"]["experiment_id"] == lines[0]["experiment_id"]
    text = cli(capsys, "show", ids[0], *store)[1]
    assert "status codes" in text and "503" in text and "corrected" in text

    code, out, err = cli(capsys, "compare", "--baseline", ids[0], "--candidate",
                         "mesh=none,rate_rps=300", *store, "--json")
    assert code == 0, err
    rows = {r["metric"]: r for r in json_lines(out)}
    assert {"p50_us", "p99_us", "throughput_rps", "error_rate"} <= set(rows)
    differences = {metric: r["difference"] for metric, r in rows.items()}
    # throughput is a mean of per-run values: one run per side gives no interval to judge
    assert differences.pop("throughput_rps") == "not judged"
    assert set(differences.values()) <= {
        "faster", "slower", "indistinguishable", "higher", "lower"}
    code, out, _ = cli(capsys, "compare", "--baseline", ids[0], "--candidate", ids[1], *store)
    assert code == 0 and "p99_us" in out

    missing = meshlab("show", "no-such-run", *store)     # a real process: no traceback
    assert missing.returncode == 2 and "no-such-run" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_bad_profile_lists_every_problem(tmp_path: Path) -> None:
    prof = tmp_path / "bad.yaml"
    prof.write_text("name: bad\ntarget: ftp://nowhere\nrunner: warp\n"
                    "loads: {rate_rps: [-5], connections: 0}\nextra_key: 1\n")
    proc = meshlab_here("run", str(prof), "--store", str(tmp_path / "m.duckdb"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    for path in ("target", "runner", "loads.rate_rps", "loads.connections", "extra_key"):
        assert f"{path}:" in proc.stderr, proc.stderr
    assert "5 problems" in proc.stderr
    assert not (tmp_path / "m.duckdb").exists()


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert meshlab().returncode == 2
    assert meshlab("run").returncode == 2
    assert meshlab("run", str(tmp_path / "absent.yaml")).returncode == 2
    proc = subprocess.run([sys.executable, "-m", "meshlab", "--version"], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0 and proc.stdout.startswith("meshlab ")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_target_down_is_a_failed_run(tmp_path: Path) -> None:
    """300 of 300 connections refused: the run is stored as failed, saying why, and exits 1."""
    db = tmp_path / "m.duckdb"
    prof = write_profile(tmp_path / "down.yaml", f"http://127.0.0.1:{_free_port()}/",
                         rates="[300]", duration_s=1.0)
    proc = meshlab_here("run", str(prof), "--store", str(db), "--json", "--quiet")
    assert proc.returncode == 1, proc.stderr
    (line,) = json_lines(proc.stdout)
    assert line["status"] == "failed"
    assert line["requests"] == pytest.approx(300, rel=0.02)
    assert line["errors"] == line["requests"]
    assert set(line["error_kinds"]) == {"connect_refused"}
    assert line["error"].startswith("no successful response")
    assert line["slo"]["pass"] is False
    assert f"run {line['run_id']} failed: no successful response" in proc.stderr
    assert list(Store(db, read_only=True).runs()["status"]) == ["failed"]


def test_target_down_stores_the_run_and_stops_the_experiment(tmp_path: Path) -> None:
    """Every request refused: the run is stored with its connect errors, then the experiment
    stops as failed (exit 1) and says why instead of going on to the next rate."""
    prof = write_profile(tmp_path / "down.yaml", f"http://127.0.0.1:{_free_port()}/",
                         rates="[100, 200]", duration_s=0.5)
    proc = meshlab_here("run", str(prof), "--store", str(tmp_path / "m.duckdb"), "--json",
                        "--quiet")
    assert proc.returncode == 1, proc.stderr
    assert "experiment failed: stopped: run 1" in proc.stderr
    assert "no successful response" in proc.stderr
    (line,) = json_lines(proc.stdout)
    assert line["requests"] > 0 and line["errors"] == line["requests"]


def test_a_breached_slo_exits_1(echo_url: str, tmp_path: Path) -> None:
    prof = write_profile(tmp_path / "slo.yaml", echo_url, rates="[100]", duration_s=0.3,
                         extra="slo: {p50_ms: 0.001}\n")
    proc = meshlab_here("run", str(prof), "--store", str(tmp_path / "m.duckdb"), "--json",
                        "--quiet")
    assert proc.returncode == 1, proc.stderr
    (line,) = json_lines(proc.stdout)
    assert line["status"] == "completed" and line["slo"]["pass"] is False
    p50 = line["slo"]["criteria"]["p50_ms"]
    assert p50["limit"] == 0.001 and p50["pass"] is False
    assert p50["measured"] == pytest.approx(line["p50_us"] / 1000, rel=1e-4)
    assert f"run {line['run_id']} completed: p50_ms" in proc.stderr


def test_saturation_is_degraded_and_counted(echo_url: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """3x the capacity (2 connections x ?delay=10ms ~ 200 req/s, asked for 600 req/s)."""
    db = tmp_path / "m.duckdb"
    prof = write_profile(tmp_path / "sat.yaml", echo_url + "?delay=10ms", rates="[600]",
                         duration_s=2.5)
    proc = meshlab_here("run", str(prof), "--store", str(db), "--json", "--quiet")
    assert proc.returncode == 1, proc.stderr
    (line,) = json_lines(proc.stdout)
    due = 600 * line["duration_s"]
    assert line["status"] == "degraded" and line["errors"] == 0
    assert line["requests"] + line["unsent_requests"] == pytest.approx(due, rel=0.01)
    assert line["p50_us"] >= line["duration_s"] * 1e6 / 4
    assert line["slo"]["criteria"]["achieved_ratio"]["pass"] is False
    (warning,) = line["warnings"]
    assert "of the requested 600 req/s" in warning and "too few connections" in warning
    code, out, _ = cli(capsys, "show", line["run_id"], "--store", str(db))
    assert code == 0
    assert (f"{line['unsent_requests']:,} requests came due and were never sent; they are "
            f"counted in the corrected latency at their age at the end of the window (a lower "
            f"bound)") in " ".join(out.split())


def test_search_finds_the_highest_rate_holding_the_slo(echo_url: str, tmp_path: Path) -> None:
    db = tmp_path / "m.duckdb"
    prof = write_profile(tmp_path / "s.yaml", echo_url + "?delay=10ms", rates="[100]",
                         duration_s=0.6, extra="slo: {p99_ms: 500}\n")
    proc = meshlab_here("search", str(prof), "--store", str(db), "--json", "--max-rps", "800",
                        "--max-probes", "5")
    assert proc.returncode == 0, proc.stderr
    (row,) = json_lines(proc.stdout)
    # 2 connections x 10 ms: ~200 req/s; 100 holds, 800 cannot
    assert 100 <= row["max_rate_rps"] < 230 and row["mesh"] == "none"
    assert len(row["probes"]) == 5 and any(not p["pass"] for p in row["probes"])
    assert "search mesh=none" in proc.stderr and "probe 1 at 100 req/s: holds" in proc.stderr
    stored = Store(db, read_only=True).runs()
    assert sorted(stored["run_id"]) == sorted(p["run_id"] for p in row["probes"])
    # one experiment per probe, one load worker process for all of them
    workers = {json.loads(c)["load_worker_pid"] for c in stored["context"]}
    assert len(workers) == 1 and os.getpid() not in workers
    # nothing holds against a closed port: exit 1
    down = write_profile(tmp_path / "d.yaml", f"http://127.0.0.1:{_free_port()}/",
                         rates="[100]", duration_s=0.3)
    proc = meshlab_here("search", str(down), "--store", str(db), "--max-probes", "2", "--quiet")
    assert proc.returncode == 1 and "none held" in proc.stdout, proc.stdout + proc.stderr


def _connected(pid: int, port: int | None) -> bool:
    """Whether a process started by `pid` holds a TCP connection to `port`."""
    import psutil

    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return False
    for child in children:
        with contextlib.suppress(psutil.Error):
            if any(c.raddr and c.raddr.port == port for c in child.net_connections("tcp")):
                return True
    return False


def test_sigint_stores_an_aborted_run(echo_url: str, tmp_path: Path) -> None:
    db = tmp_path / "m.duckdb"
    prof = write_profile(tmp_path / "long.yaml", echo_url, rates="[100, 200]", duration_s=30)
    argv = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "meshlab"]
    proc = subprocess.Popen([*argv, "run", str(prof), "--store", str(db), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Wait until the run measures (no warm-up: its load worker is connected to the echo
        # server), then let it count some responses.
        port = urlsplit(echo_url).port
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _connected(proc.pid, port):
            time.sleep(0.05)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    (line,) = json_lines(out)
    assert line["status"] == "aborted" and line["requests"] > 0
    store = Store(db, read_only=True)
    assert list(store.runs()["status"]) == ["aborted"]
    assert list(store.experiments()["status"]) == ["aborted"]
    assert "stored as aborted" in err


def test_echo_command_serves_until_interrupted() -> None:
    argv = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "meshlab"]
    proc = subprocess.Popen([*argv, "echo", "--port", "0", "--name", "cli-echo"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1].strip().strip("/"))
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /?status=418 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            reply = s.recv(4096)
        assert reply.startswith(b"HTTP/1.1 418")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_meshery_profile_runs_with_a_runner_override(echo_url: str, tmp_path: Path) -> None:
    doc = {"name": "meshery soak", "loadGenerators": ["fortio"], "endpoints": [echo_url],
           "serviceMesh": "", "concurrentRequest": 2, "qps": 100, "duration": "1s",
           "requestHeaders": json.dumps({"Authorization": SECRET, "X-Trace": "visible"})}
    prof = tmp_path / "meshery.json"
    prof.write_text(json.dumps(doc))
    db = tmp_path / "m.duckdb"
    proc = meshlab_here("run", str(prof), "--store", str(db), "--json", "--runner", "native")
    assert proc.returncode == 0, proc.stderr
    (line,) = json_lines(proc.stdout)
    assert line["status"] == "completed" and line["runner"] == "native"
    assert line["requested_rate_rps"] == 100.0 and line["requests"] > 0
    assert SECRET not in proc.stdout + proc.stderr
    assert SECRET not in " ".join(Store(db, read_only=True).runs()["spec"])


def test_export_then_import(
        stored: tuple[Path, list[dict[str, Any]], subprocess.CompletedProcess[str]],
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db, lines, _ = stored
    run_id = lines[0]["run_id"]
    out = tmp_path / "fortio.json"
    code, _, err = cli(capsys, "export", run_id, "--format", "fortio", "--out", str(out),
                       "--store", str(db))
    assert code == 0, err
    assert json.loads(out.read_text())["DurationHistogram"]["Count"] == lines[0]["requests"]
    other = tmp_path / "imported.duckdb"
    code, text, err = cli(capsys, "import", str(out), "--store", str(other), "--json")
    assert code == 0, err
    (line,) = json_lines(text)
    assert line["requests"] == lines[0]["requests"]
    runs = Store(other, read_only=True).runs()
    assert list(runs["requests"]) == [lines[0]["requests"]]
    code, text, _ = cli(capsys, "export", run_id, "--format", "csv", "--store", str(db))
    assert code == 0 and text.startswith("run_id,") and run_id in text
    bad = tmp_path / "garbage.json"
    bad.write_text('{"hello": "world"}')
    code, _, err = cli(capsys, "import", str(bad), "--store", str(other))
    assert code == 2 and "not a recognised result document" in err


def test_crosscheck_reports_missing_tools_as_skipped(echo_url: str, tmp_path: Path) -> None:
    prof = write_profile(tmp_path / "cc.yaml", echo_url, rates="[0]", duration_s=0.5)
    proc = meshlab_here("crosscheck", str(prof), "--runners", "native,fortio", "--json",
                        "--quiet", "--store", str(tmp_path / "cc.duckdb"))
    assert proc.returncode == 0, proc.stderr
    rows = {r["runner"]: r for r in json_lines(proc.stdout)}
    assert rows["native"]["status"] == "completed" and rows["native"]["requests"] > 0
    if not __import__("shutil").which("fortio"):
        assert rows["fortio"]["status"] == "skipped"


def test_json_lines_reach_redirected_stdout_while_progress_draws_on_a_terminal(
        echo_url: str, tmp_path: Path) -> None:
    """`meshlab run --json > runs.jsonl` in a terminal: rich draws on the tty (stderr) and must
    not swallow stdout."""
    import pty
    import threading

    prof = write_profile(tmp_path / "p.yaml", echo_url, rates="[100]", duration_s=0.5)
    master, slave = pty.openpty()
    drawn = bytearray()

    def drain() -> None:
        with contextlib.suppress(OSError):
            while chunk := os.read(master, 4096):
                drawn.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    argv = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "meshlab"]
    try:
        proc = subprocess.run([*argv, "run", str(prof), "--store", str(tmp_path / "m.duckdb"),
                               "--json"], stdout=subprocess.PIPE, stderr=slave, text=True,
                              timeout=60)
    finally:
        os.close(slave)
        reader.join(5)
        os.close(master)
    assert proc.returncode == 0
    (line,) = json_lines(proc.stdout)
    assert line["status"] == "completed"
    assert b"run 1" in drawn                   # the progress display went to the terminal


def test_compare_by_mesh_puts_every_mesh_against_the_baseline(
        echo_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Two "meshes" on the direct environment are labels only: the candidate's requests carry a
    # 3 ms delay, so its pooled p50 must exceed the baseline's by roughly that much.
    store = tmp_path / "by.duckdb"
    for mesh, query in (("none", ""), ("slow", "?delay=3ms")):
        profile = write_profile(tmp_path / f"{mesh}.yaml", echo_url + query, name="by",
                                rates="[100]", extra=f"meshes: [{mesh}]\nrepeats: 2\n")
        assert meshlab_here("run", str(profile), "--store", str(store), "--quiet").returncode == 0
    code, out, err = cli(capsys, "compare", "--store", str(store), "--by", "mesh",
                         "--baseline", "mesh=none", "--json")
    assert code == 0, err
    rows = {r["mesh"]: r for r in json_lines(out)}
    assert set(rows) == {"none", "slow"}
    assert rows["none"]["runs"] == 2 and rows["slow"]["runs"] == 2
    assert rows["none"]["role"] == "baseline" and "delta_p50_us" not in rows["none"]
    assert 2_000 < rows["slow"]["delta_p50_us"] < 30_000
    assert rows["slow"]["ci_low_p50_us"] > 0 and rows["slow"]["difference_p50_us"] == "slower"
    # --experiment latest keeps only the second profile's runs: no baseline among them
    code, _, err = cli(capsys, "compare", "--store", str(store), "--by", "mesh",
                       "--baseline", "mesh=none", "--experiment", "latest")
    assert code == 2 and "no runs with mesh=none" in err
    code, _, err = cli(capsys, "compare", "--store", str(store), "--baseline", "mesh=none")
    assert code == 2 and "--candidate" in err
