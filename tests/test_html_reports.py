"""HTML leaderboard and run report: self-contained, escaped, and sortable in a real browser.

The browser test drives Debian's headless Chromium through chromedriver (``.ci/run``
installs both); where they are missing it skips saying so, unless ``CPI_REQUIRE_BROWSER=1``
(CI) makes that a failure.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import pytest

from cpi_bench.harness_ext import cli
from cpi_bench.harness_ext.reports.inversion import build_inversion
from cpi_bench.harness_ext.reports.run_report import write as write_run_reports
from tests.helpers import browser

EVIL = '<script>alert("x")</script> & "q" <b>'  # a model name is user input
# (model, cf per task, param per task): cf and param orders differ on purpose.
MODELS = [
    ("org/alpha", 0.40, 0.30),
    (EVIL, 0.80, 0.10),
    ("org/gamma", 0.20, 0.50),
]
CURVE = {0: 0.30, 100: 0.55, 200: 0.70, 300: 0.60, 400: 0.50}
TASKS = ("cpi_capitals", "cpi_quotes")


def results(model: str, cf: float, param: float, n: int = 100) -> dict:
    """An lm-eval results JSON (the parts the reports read), with recorded settings."""
    out: dict = {"results": {}, "n-samples": {}, "versions": {}, "n-shot": {}}
    for task in TASKS:
        out["results"][task] = {
            "name": task,
            "cf_acc,none": cf,
            "cf_acc_stderr,none": math.sqrt(cf * (1 - cf) / (n - 1)),
            "param_acc,none": param,
            "param_acc_stderr,none": math.sqrt(param * (1 - param) / (n - 1)),
        }
        out["n-samples"][task] = {"original": 500, "effective": n}
        out["versions"][task] = 2.0
        out["n-shot"][task] = 0
    out["model_name"] = model
    out["chat_template_sha"] = None
    out["lm_eval_version"] = "0.4.13"
    return out


def step_file(step: int, cf: float) -> dict:
    data = results("run", cf, 0.5 - cf / 2)
    data["cpi"] = {
        "step": step,
        "label": "base" if step == 0 else f"checkpoint-{step}",
        "settings": {"tasks": list(TASKS), "limit": 100, "apply_chat_template": False},
        "provenance": {"model": {"kind": "full", "weights": f"{step:064x}"}},
    }
    del data["chat_template_sha"]
    return data


@pytest.fixture
def board_inputs(tmp_path: Path) -> list[str]:
    paths = []
    for i, (model, cf, param) in enumerate(MODELS):
        path = tmp_path / f"m{i}.json"
        path.write_text(json.dumps(results(model, cf, param)))
        paths.append(str(path))
    run = tmp_path / "run"
    by_step = {s: step_file(s, v) for s, v in CURVE.items()}
    (run / "eval").mkdir(parents=True)
    for s, data in by_step.items():
        (run / "eval" / f"step-{s}.json").write_text(json.dumps(data))
    write_run_reports(run, build_inversion(by_step, id_tasks=[], run={"name": "demo-run"}))
    return [*paths, str(run)]


def _board(tmp_path: Path, inputs: list[str]) -> Path:
    out = tmp_path / "board.html"
    assert cli.main(["compare", *inputs, "--format", "html", "--output", str(out)]) == 0
    return out


def test_board_html_is_self_contained_and_escaped(tmp_path: Path, board_inputs: list) -> None:
    html = _board(tmp_path, board_inputs).read_text()
    assert html.count("<script>") == 1  # ours, once; the model name's is text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;q&quot;" in html
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert not re.search(r"""(src|href)\s*=|@import|url\(""", html)  # nothing to fetch
    assert "<svg" in html and "demo-run@400" in html  # the run's curve, inline
    assert "[" in html and "<details>" in html  # intervals; provenance one click away
    assert "0000000000000000" in html  # the step's weights fingerprint
    for task in TASKS:
        assert f"{task} cf (%)" in html and f"{task} param (%)" in html


def test_run_report_html(board_inputs: list, tmp_path: Path) -> None:
    run = Path(board_inputs[-1])
    page = (run / "inversion.html").read_text()
    assert page.count("<tr>") == len(CURVE) + 1 and "<svg" in page and "polyline" in page
    assert "peak 70.0% at step 200" in page  # the summary sentence
    out = tmp_path / "t.html"
    assert cli.main(["table", str(run), "--format", "html", "--output", str(out)]) == 0
    assert out.read_text() == page


# ----------------------------------------------------------------------------- real browser


def _need_browser() -> None:
    reason = browser.missing_reason()
    if reason:
        if os.environ.get("CPI_REQUIRE_BROWSER") == "1":
            pytest.fail(f"CPI_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)


def _column(driver, table: str, header: str) -> list:
    """The sort keys (data-v) of one column of ``table``, in row order."""
    heads = driver.find_elements("css selector", f"#{table} thead th")
    col = [h.text.strip() for h in heads].index(header)
    cells = driver.find_elements("css selector", f"#{table} tbody tr td:nth-child({col + 1})")
    return [c.get_attribute("data-v") for c in cells]


def _click(driver, table: str, header: str) -> None:
    for h in driver.find_elements("css selector", f"#{table} thead th"):
        if h.text.strip() == header:
            h.click()
            return
    raise AssertionError(f"no header {header!r}")


def test_board_in_headless_chromium(tmp_path: Path, board_inputs: list) -> None:
    """Loads with no console error, one row per model, and sorting by a column reorders the
    rows the right way (numbers best first, then ascending; text A-Z)."""
    _need_browser()
    page = _board(tmp_path, board_inputs)
    with browser.headless_chromium() as driver:
        driver.get(page.resolve().as_uri())
        assert browser.console_errors(driver) == []
        rows = driver.find_elements("css selector", "#board tbody tr")
        assert len(rows) == len(MODELS) + 1  # three results files and the run
        models = [r.find_element("css selector", "td.model").text for r in rows]
        assert models[0] == EVIL  # best mean cf first; the name shown as text
        before = [float(v) for v in _column(driver, "board", "mean param (%)")]
        _click(driver, "board", "mean param (%)")
        after = [float(v) for v in _column(driver, "board", "mean param (%)")]
        assert after == sorted(before, reverse=True) and after != before
        _click(driver, "board", "mean param (%)")
        assert [float(v) for v in _column(driver, "board", "mean param (%)")] == sorted(before)
        _click(driver, "board", "model")
        shown = [
            r.find_element("css selector", "td.model").text
            for r in driver.find_elements("css selector", "#board tbody tr")
        ]
        assert shown == sorted(shown, key=str.lower)
        assert browser.console_errors(driver) == []


def test_run_report_in_headless_chromium(board_inputs: list) -> None:
    _need_browser()
    page = Path(board_inputs[-1]) / "inversion.html"
    with browser.headless_chromium() as driver:
        driver.get(page.resolve().as_uri())
        assert browser.console_errors(driver) == []
        assert len(driver.find_elements("css selector", "#steps tbody tr")) == len(CURVE)
        assert driver.find_elements("css selector", "svg.curve polyline")
        _click(driver, "steps", "CF acc (%)")
        cf = [float(v) for v in _column(driver, "steps", "CF acc (%)")]
        assert cf == sorted(cf, reverse=True) and cf[0] == pytest.approx(0.70)
        details = driver.find_elements("css selector", "#steps details")
        details[0].click()
        assert "weights" in details[0].text


def test_sweep_never_writes_over_a_users_inversion_html(tmp_path: Path) -> None:
    """The sweep now writes inversion.html: its guard must know it (a user's page there is
    refused, ours is recognised by its generator mark)."""
    from cpi_bench.harness_ext.core.errors import CPIError
    from cpi_bench.harness_ext.core.run_folder import Target
    from cpi_bench.harness_ext.evaluation import guards

    run = tmp_path / "run"
    targets = [Target(0, "base", "b", "base")]
    write_run_reports(run, build_inversion({}, id_tasks=[]))
    guards.check_outputs_are_ours(run, targets)  # our own page: fine
    (run / "inversion.html").write_text("<html><body>my notes</body></html>")
    with pytest.raises(CPIError, match=r"inversion\.html was not written by cpi sweep"):
        guards.check_outputs_are_ours(run, targets)


def test_markdown_board_shows_95_intervals(board_inputs: list, capsys) -> None:
    """The Markdown board (the README's) carries the same Wilson intervals as the page: the
    mean over the 2 shared tasks of 100 items each is on 200 items."""
    from cpi_bench.harness_ext.reports.stats import wilson_interval

    assert cli.main(["compare", *board_inputs, "--format", "md"]) == 0
    out = capsys.readouterr().out
    low, high = wilson_interval(0.8, 200)
    assert f"| 80.0 ± 2.8 [{100 * low:.1f}, {100 * high:.1f}] |" in out
    assert "mean cf ± se [95% CI]" in out and "95% Wilson score intervals" in out
