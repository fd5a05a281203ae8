"""Redaction takes linear time on hostile strings (the old userinfo regex was quadratic: a 1 MB
fortio `Labels` hung `meshlab import`), and one string is scanned up to a fixed size."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from _hostile import stored_run
from hypothesis import given, settings
from hypothesis import strategies as st

from meshlab.formats import export_run
from meshlab.profile import REDACTED, redact_document

# Pieces that make backtracking regexes slow when repeated: scheme-like runs, `://` without a
# host, `@` without `/`, query separators, header-like `Name:` prefixes.
PIECES = ["a", "A9", "x://", "://", "@", "a@", ":", "?", "&", "=", "token=", "http://u:p@h",
          "/", "-", "%", "\r\n", " ", "\x00", "\u202e", "é"]

long_strings = st.lists(st.tuples(st.sampled_from(PIECES), st.integers(1, 60_000)),
                        min_size=1, max_size=4).map(lambda parts: "".join(p * n for p, n in parts))


@settings(max_examples=40, deadline=timedelta(seconds=5))   # linear: milliseconds per example
@given(long_strings)
def test_redaction_of_long_strings_is_linear(text: str) -> None:
    out = redact_document(text)
    assert redact_document({"Labels": text, "URL": text, "list": [text]})["Labels"] == out
    assert redact_document(out) == out


def test_one_string_is_scanned_up_to_the_limit() -> None:
    from meshlab.redaction import MAX_REDACT_CHARS, redact_url

    huge = "http://u:p@h/?token=" + "a" * MAX_REDACT_CHARS
    out = redact_document({"Labels": huge})["Labels"]
    assert "token=a" not in out and len(out) < 200 and "limit" in out
    at_limit = "http://u:p@h/" + "a" * (MAX_REDACT_CHARS - 13)
    assert redact_url(at_limit) == f"http://{REDACTED}@h/" + "a" * (MAX_REDACT_CHARS - 13)


def test_import_of_a_megabyte_label_finishes(tmp_path: Path) -> None:
    """The issue's reproduction: a fortio result whose `Labels` is 1 MB of letters. Imported in
    a child process so that a regression fails on the timeout instead of hanging the suite."""
    doc = json.loads(export_run(stored_run(tmp_path / "s.duckdb"), "fortio"))
    doc["Labels"] = "a" * 1_000_000
    path = tmp_path / "long-label.json"
    path.write_text(json.dumps(doc))
    code = ("import sys\nfrom meshlab.formats import import_results\n"
            "(r,) = import_results(sys.argv[1])\nprint(len(r.raw['Labels']))")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, timeout=90, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1000000"
