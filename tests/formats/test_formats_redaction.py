"""Imported documents are stored as they came, minus the credentials they carried."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
from _formats_reference import REFERENCE

from meshlab.formats import import_results
from meshlab.profile import REDACTED, redact_document
from meshlab.store import Store

SECRETS = ("Bearer imp0rt-s3cret", "alice:pa55word", "tok-998877")


def _doc_with_secrets() -> bytes:
    doc = json.loads((REFERENCE / "fortio" / "fortio-README-rest-run-http-result.json")
                     .read_text())
    doc["Headers"] = ["Authorization: Bearer imp0rt-s3cret", "X-Trace: visible-trace"]
    doc["UserCredentials"] = "alice:pa55word"
    doc["URL"] = "http://bob:tok-998877@127.0.0.1:8080/echo?x=1"
    return json.dumps(doc).encode()


def test_no_credential_of_an_imported_document_reaches_the_store(tmp_path: Path) -> None:
    results = import_results(_doc_with_secrets())
    store = Store(tmp_path / "imp.duckdb")
    store.save_many(results)
    con = duckdb.connect(str(tmp_path / "imp.duckdb"), read_only=True)
    try:
        dumped = json.dumps([con.execute(f"SELECT * FROM {t}").fetchall()
                             for t in ("runs", "run_raw")], default=str)
    finally:
        con.close()
    for secret in SECRETS:
        assert secret not in dumped
    assert "visible-trace" in dumped           # what is not secret is kept as it came
    raw = results[0].raw
    assert raw is not None and raw["UserCredentials"] == REDACTED
    assert raw["Headers"] == [f"Authorization: {REDACTED}", "X-Trace: visible-trace"]
    assert raw["URL"] == f"http://{REDACTED}@127.0.0.1:8080/echo?x=1"


def test_redact_document_leaves_ordinary_values_alone() -> None:
    doc = {"a": [1, "b: c", {"api_key": "k", "n": None}], "Cookie": "", "author": 3}
    assert redact_document(doc) == {"a": [1, "b: c", {"api_key": REDACTED, "n": None}],
                                     "Cookie": "", "author": 3}
