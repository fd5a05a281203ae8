"""Profiles that would inject or misbehave are refused with one ProfileError naming the field:
control characters in headers and targets (RFC 9110), whitespace in the target, non-finite
numbers anywhere; unreadable files (not UTF-8, too big, nested too deeply) are one error line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _hostile import cli, one_error_line

from meshlab.errors import ProfileError
from meshlab.profile import Profile

BASE = "name: strict\ntarget: http://127.0.0.1:8080/\n"


def _problems(text: str) -> str:
    with pytest.raises(ProfileError) as ei:
        Profile.from_yaml(text, source="p.yaml")
    return "\n".join(ei.value.problems)


@pytest.mark.parametrize("value", ["ok\r\nX-Injected: 1", "ok\nX-Injected: 1", "ok\r",
                                   "ok\x00", "ok\x1b[31m", "ok\x7f"])
def test_control_character_in_a_header_value_is_refused(value: str) -> None:
    problems = _problems(BASE + f"request: {{headers: {{X-Trace: {json.dumps(value)}}}}}\n")
    assert "request.headers" in problems and "X-Trace" in problems


@pytest.mark.parametrize("field", ["cookies", "headers"])
def test_control_character_in_a_cookie_or_header_name_is_refused(field: str) -> None:
    problems = _problems(BASE + f'request: {{{field}: {{"a\\r\\nb": v}}}}\n')
    assert f"request.{field}" in problems


def test_control_character_in_content_type_is_refused() -> None:
    problems = _problems(BASE + 'request: {content_type: "text/plain\\r\\nX-Injected: 1"}\n')
    assert "request.content_type" in problems


def test_tab_and_visible_text_in_a_header_value_are_fine() -> None:
    p = Profile.from_yaml(BASE + 'request: {headers: {X-A: "a\\tb c; é"}}\n')
    assert p.request.headers == {"X-A": "a\tb c; é"}


@pytest.mark.parametrize("target", ["http://127.0.0.1:8080/a b", "http://127.0.0.1:8080/\r\nX: y",
                                    "http://127.0.0.1:8080/a\tb", "http://127.0.0.1:8080/\x00",
                                    "http://127.0.0.1:8080/a\u00a0b", "http://127.0.0.1:8080/\n",
                                    "http://127.0.0.1:8080/\x1b"])
def test_whitespace_or_control_character_in_the_target_is_refused(target: str) -> None:
    problems = _problems(f"name: strict\ntarget: {json.dumps(target)}\n")
    assert problems.startswith("target: ")


@pytest.mark.parametrize(("snippet", "path"), [
    ("loads: {rate_rps: .nan}", "loads.rate_rps"),
    ("loads: {rate_rps: [100, .inf]}", "loads.rate_rps"),
    ("loads: {rate_rps: [100, -.inf]}", "loads.rate_rps"),
    ("loads: {rate_rps: 'nan'}", "loads.rate_rps"),
    ("loads: {duration_s: .nan}", "loads.duration_s"),
    ("request: {timeout_s: .inf}", "request.timeout_s"),
    ("policies: [{name: rl, rate_limit: {requests_per_s: .inf}}]",
     "policies[0].rate_limit.requests_per_s"),
    ("policies: [{name: rl, rate_limit: {requests_per_s: 'Infinity'}}]",
     "policies[0].rate_limit.requests_per_s"),
    ("environment: kubernetes\ntopology: {replicas: {app: .nan}}", "topology.replicas.app"),
])
def test_non_finite_numbers_are_refused_with_their_path(snippet: str, path: str) -> None:
    problems = _problems(BASE + snippet + "\n")
    assert path in problems and "finite" in problems, problems


def test_non_utf8_profile_is_one_error_line(capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes((BASE + "description: caf\xe9\n").encode("latin-1"))
    with pytest.raises(ProfileError, match="not UTF-8"):
        Profile.load(path)
    code, _, err = cli(capsys, "run", str(path), "--store", str(tmp_path / "s.duckdb"))
    assert code == 2 and "not UTF-8" in one_error_line(err)


@pytest.mark.parametrize("kind", ["yaml-flow", "yaml-block", "json"])
def test_deeply_nested_profile_is_one_error_line(capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path, kind: str) -> None:
    depth = 5_000
    if kind == "yaml-flow":
        text = BASE + "labels: " + "[" * depth + "]" * depth + "\n"
    elif kind == "yaml-block":
        text = BASE + "labels:\n" + "".join(" " * i + "- \n" for i in range(0, depth, 1))
    else:
        text = '{"name": "n", "target": "http://127.0.0.1/", "labels": ' + "[" * depth \
            + "]" * depth + "}"
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    # refused while scanning, at the 65th level (PyYAML took seconds to reach its recursion
    # limit on 5,000 levels); the block case is over the size limit before any nesting
    with pytest.raises(ProfileError, match="1 MiB" if kind == "yaml-block" else
                       r"line \d+, column \d+: nested deeper than 64 levels"):
        Profile.load(path)
    code, _, err = cli(capsys, "run", str(path), "--store", str(tmp_path / "s.duckdb"))
    assert code == 2
    one_error_line(err)


def test_profile_size_limit_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(BASE + "description: " + "x" * (2 << 20) + "\n")
    with pytest.raises(ProfileError, match="1 MiB"):
        Profile.load(path)
    code, _, err = cli(capsys, "run", str(path), "--store", str(tmp_path / "s.duckdb"))
    assert code == 2 and "1 MiB" in one_error_line(err)


def test_yaml_alias_bomb_is_refused_quickly() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    text = BASE + "topology:\n" + "".join(f"  {line}\n" for line in lines) + \
        "environment: kubernetes\n"
    problems = _problems(text)
    assert "values" in problems
