"""The gate's report in the formats CI systems read: JUnit XML and a Markdown step summary.

Both are rendered from the report's ``checks`` only (pure functions; ``cpi gate`` writes
them). A check is ``{"task", "metric", "baseline", "candidate", "passed", "gated",
"message", ...}``: a gated check that did not pass is the regression, a JUnit ``<failure>``
whose message holds the numbers and the interval; an informational check (``gated`` false:
the per-task rows of a gate on the mean over tasks) is a passing test case whose
``<system-out>`` holds its numbers.

* JUnit XML: one ``<testsuite>`` (``cpi gate``), one ``<testcase>`` per task and metric,
  ``classname`` ``cpi_gate.<metric>``; tasks skipped with ``--allow-missing`` are
  ``<skipped>``. GitLab (``artifacts:reports:junit``), Jenkins, Buildkite and GitHub actions
  that publish JUnit read it.
* Markdown: a heading with the verdict and a table, appended to the file named by
  ``$GITHUB_STEP_SUMMARY`` (GitHub shows it on the run's summary page).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from .settings import mismatch_lines

SUITE = "cpi gate"


def skipped_of(report: dict[str, Any]) -> list[str]:
    """What ``--allow-missing`` skipped: ``task metric`` pairs (YAML baseline) or tasks."""
    return list(report.get("missing") or report.get("missing_tasks") or [])


def _fmt(value: Any) -> str:
    return "" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def _testcase(check: dict[str, Any]) -> ET.Element:
    case = ET.Element(
        "testcase",
        classname=f"cpi_gate.{check['metric']}",
        name=str(check["task"]),
        time="0",
    )
    for key in ("baseline", "candidate", "threshold", "n_candidate"):
        if check.get(key) is not None:
            case.set(key, _fmt(check[key]))  # extra attributes: CI viewers ignore them
    if check["gated"] and not check["passed"]:
        failure = ET.SubElement(case, "failure", message=check["message"], type="regression")
        failure.text = check["message"]
    else:
        ET.SubElement(case, "system-out").text = check["message"]
    return case


def junit_xml(report: dict[str, Any], name: str = SUITE) -> str:
    """JUnit XML of a gate report (see the module docstring), as UTF-8 text."""
    checks = report["checks"]
    skipped = skipped_of(report)
    failures = sum(1 for c in checks if c["gated"] and not c["passed"])
    root = ET.Element(
        "testsuites",
        name=name,
        tests=str(len(checks) + len(skipped)),
        failures=str(failures),
        errors="0",
    )
    suite = ET.SubElement(
        root,
        "testsuite",
        name=name,
        tests=str(len(checks) + len(skipped)),
        failures=str(failures),
        errors="0",
        skipped=str(len(skipped)),
        time="0",
    )
    props = ET.SubElement(suite, "properties")
    for key in ("baseline_source", "candidate_source", "metric", "max_drop", "model_name"):
        if report.get(key) is not None:
            ET.SubElement(props, "property", name=key, value=str(report[key]))
    for check in checks:
        suite.append(_testcase(check))
    for label in skipped:
        case = ET.SubElement(suite, "testcase", classname="cpi_gate.missing", name=str(label))
        ET.SubElement(case, "skipped", message=f"{label}: the candidate lacks it")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def _md(text: Any) -> str:
    """A Markdown table cell: pipes and line breaks escaped, HTML special characters too."""
    out = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return out.replace("|", "\\|").replace("\n", " ")


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def step_summary(report: dict[str, Any], title: str) -> str:
    """The Markdown a GitHub step summary shows: verdict, one row per check, notes."""
    verdict = "✅ PASS" if report["passed"] else "❌ FAIL"
    lines = [
        f"### cpi gate: {verdict}",
        "",
        _md(title),
        "",
        "| task | metric | baseline (%) | candidate (%) | status | detail |",
        "|---|---|---:|---:|---|---|",
    ]
    for c in report["checks"]:
        status = ("pass" if c["passed"] else "**regression**") if c["gated"] else "(not gated)"
        lines.append(
            f"| {_md(c['task'])} | {_md(c['metric'])} | {_pct(c.get('baseline'))} | "
            f"{_pct(c.get('candidate'))} | {status} | {_md(c['message'])} |"
        )
    skipped = skipped_of(report)
    notes = [f"Skipped (--allow-missing): {', '.join(skipped)}"] if skipped else []
    for text in mismatch_lines(report.get("settings_mismatches") or []):
        notes.append(f"Settings differ (accepted): {text}")
    if notes:
        lines += [""] + [f"- {_md(n)}" for n in notes]
    return "\n".join(lines) + "\n\n"
