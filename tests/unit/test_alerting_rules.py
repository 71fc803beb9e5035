"""deploy/prometheus/alerts.yml: valid rules, each alert unit-tested firing and quiet under promtool, each with a runbook.

promtool comes with Debian's `prometheus` package; .ci/run installs it. Without it the promtool tests skip,
saying so, or fail where CI requires every tool (tests/skips.py).
"""

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.alert_rules import RULE_TESTS, RULES, RULES_DIR, alerting_rules
from tests.skips import skip_or_fail

README = Path(__file__).resolve().parents[2] / "README.md"
PROMTOOL_MISSING = "promtool is missing: apt-get install prometheus (.ci/run installs it)"


def promtool(*args: str) -> subprocess.CompletedProcess:
    found = shutil.which("promtool")
    if found is None:
        skip_or_fail(PROMTOOL_MISSING)
    return subprocess.run([found, *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=120)


def test_the_rules_pass_promtools_check_and_lint():
    checked = promtool("check", "rules", RULES.name)

    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_rules_unit_tests_pass_under_promtool():
    tested = promtool("test", "rules", RULE_TESTS.name)

    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_is_unit_tested_both_firing_and_not_firing():
    cases = {(case["alertname"], bool(case.get("exp_alerts")))
             for test in yaml.safe_load(RULE_TESTS.read_text())["tests"] for case in test.get("alert_rule_test", [])}

    untested = [(rule["alert"], firing) for rule in alerting_rules() for firing in (True, False)
                if (rule["alert"], firing) not in cases]
    assert untested == []


def test_every_alert_has_a_severity_a_summary_and_a_runbook_section_in_the_readme():
    alerts = README.read_text().split("\n### Alerts\n", 1)[1].split("\n## ", 1)[0]
    for rule in alerting_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"], name
        assert f"Runbook: README.md, Alerts, {name}." in rule["annotations"]["description"], name
        assert re.search(rf"^#### {name}$", alerts, re.MULTILINE), f"README has no section for {name}"


def test_ci_installs_promtool_where_it_is_missing():
    ci = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()

    assert "if ! command -v promtool >/dev/null; then" in ci
    assert "apt-get install -y -q --no-install-recommends prometheus" in ci
