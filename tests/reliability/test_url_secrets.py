"""Credentials in target URLs (userinfo, `?access_token=`, `api_key`, `X-Amz-Signature` ...) go on
the wire with the load but are never stored, printed or exported; imports are redacted alike."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from _hostile import cli, recording_server, stored_run

from meshlab.formats import export_run, import_results
from meshlab.profile import REDACTED, Profile
from meshlab.store import Store

SECRETS = ("pa55w0rd", "T0KEN-aa11", "K3Y-bb22", "S1G-cc33", "PWD-dd44")
QUERY = (f"access_token={SECRETS[1]}&n=1&api_key={SECRETS[2]}&X-Amz-Signature={SECRETS[3]}"
         f"&PWD={SECRETS[4]}")


@pytest.mark.parametrize(("url", "expected"), [
    ("http://u:p@h/x?access_token=t&n=1",
     f"http://{REDACTED}@h/x?access_token={REDACTED}&n=1"),
    ("https://h/?apikey=a&Token=b&sig=c&signature=d&key=e&auth=f&passwd=g&pwd=h&secret=i&q=j",
     f"https://h/?apikey={REDACTED}&Token={REDACTED}&sig={REDACTED}&signature={REDACTED}"
     f"&key={REDACTED}&auth={REDACTED}&passwd={REDACTED}&pwd={REDACTED}&secret={REDACTED}&q=j"),
    ("http://h/cb#access_token=t&state=s", f"http://h/cb#access_token={REDACTED}&state=s"),
    ("http://h/?next=http://u:p@i/?client_secret=z",
     f"http://h/?next=http://{REDACTED}@i/?client_secret={REDACTED}"),
    ("http://h/?access%5Ftoken=t", f"http://h/?access%5Ftoken={REDACTED}"),
    ("GET http://u:p@h/?x=1 failed: reset", f"GET http://{REDACTED}@h/?x=1 failed: reset"),
    ("http://h/?sigma=1&monkey=2&keyboard=3", "http://h/?sigma=1&monkey=2&keyboard=3"),
    ("no url here, a:b@c?token=x", "no url here, a:b@c?token=x"),
])
def test_redact_url(url: str, expected: str) -> None:
    from meshlab.redaction import redact_url

    assert redact_url(url) == expected
    assert redact_url(expected) == expected             # idempotent


def _no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret} in {where}: {text[:2000]}"


def test_run_sends_the_real_url_and_keeps_no_credential(capfd: pytest.CaptureFixture[str],
                                                        tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    with recording_server() as (base, heads):
        target = base.replace("http://", f"http://alice:{SECRETS[0]}@") + f"/echo?{QUERY}"
        profile = tmp_path / "p.yaml"
        profile.write_text(f"name: secrets\ntarget: {json.dumps(target)}\n"
                           "loads: {rate_rps: 50, connections: 1, duration_s: 0.4, warmup_s: 0}\n")
        # in-process; capfd also captures what the load worker process writes
        code, out, err = cli(capfd, "run", str(profile), "--store", str(db), "--json")
    assert code == 0, err
    # the load carried the credentials: redaction is for what is kept, not what is sent
    assert heads and heads[0].startswith(f"GET /echo?{QUERY} HTTP/1.1".encode())
    _no_secret(out + err, "meshlab run output")
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = [t for (t,) in con.execute("SELECT table_name FROM information_schema.tables")
                  .fetchall()]
        dumped = json.dumps([con.execute(f'SELECT * FROM "{t}"').fetchall() for t in tables],
                            default=str)
        (stored_target,) = con.execute("SELECT target FROM runs").fetchone() or ("",)
    finally:
        con.close()
    _no_secret(dumped, "the store")
    from meshlab.redaction import redact_url

    assert stored_target == redact_url(target) and "access_token=<redacted>" in stored_target
    (run_id,) = Store(db, read_only=True).runs()["run_id"]
    for args in (("show", run_id), ("show", run_id, "--json"), ("runs", "--json"),
                 *(("export", run_id, "--format", f) for f in ("fortio", "smp", "csv"))):
        code, out, err = cli(capfd, *args, "--store", str(db))
        assert code == 0, err
        _no_secret(out + err, " ".join(args))
        assert REDACTED in out or "%3Credacted%3E" in out, args


def test_a_run_stored_before_redaction_is_redacted_when_printed_and_exported(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    target = f"http://bob:{SECRETS[0]}@127.0.0.1:9/?{QUERY}"
    result = stored_run(db, target=target, redact=False)
    assert Store(db, read_only=True).load(result.run_id).spec["target"] == target   # as stored
    for args in (("show", result.run_id), ("show", result.run_id, "--json"), ("runs", "--json"),
                 *(("export", result.run_id, "--format", f) for f in ("fortio", "smp", "csv"))):
        code, out, err = cli(capsys, *args, "--store", str(db))
        assert code == 0, err
        _no_secret(out + err, " ".join(args))


def test_import_redacts_query_tokens_and_userinfo(tmp_path: Path) -> None:
    source = stored_run(tmp_path / "a.duckdb")
    doc = json.loads(export_run(source, "fortio"))
    doc["URL"] = f"http://carol:{SECRETS[0]}@127.0.0.1:8080/echo?{QUERY}"
    doc["Labels"] = f"run against {doc['URL']}"
    (r,) = import_results(json.dumps(doc).encode())
    Store(tmp_path / "b.duckdb").save(r)
    _no_secret(json.dumps([r.spec, r.context, r.raw], default=str), "the imported run")
    loaded = Store(tmp_path / "b.duckdb", read_only=True).load(r.run_id)
    _no_secret(json.dumps([loaded.spec, loaded.context, loaded.raw], default=str), "the store")
    assert loaded.raw is not None and "n=1" in loaded.raw["URL"]     # the rest is kept


def test_profile_echo_redacts_the_target_but_the_spec_sends_it() -> None:
    target = f"http://u:{SECRETS[0]}@127.0.0.1:8080/?{QUERY}"
    profile = Profile.from_dict({"name": "p", "target": target,
                                 "labels": {"origin": f"copied from {target}"}})
    _no_secret(json.dumps(profile.to_dict()), "Profile.to_dict")
    spec = next(profile.expand())
    _no_secret(json.dumps(spec.to_dict()), "RunSpec.to_dict")
    assert spec.target == target and spec.to_dict(redact=False)["target"] == target
