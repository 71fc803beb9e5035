"""The alerting rules kept in deploy/prometheus/, read for tests: the rules, and the series their expressions select."""

import re
from pathlib import Path

import yaml

RULES_DIR = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"
RULES = RULES_DIR / "alerts.yml"
RULE_TESTS = RULES_DIR / "alerts_test.yml"

# Enough PromQL for our rules: label lists after by/on/..., ranges and offsets name no series; a name
# followed by `(` is a function or an aggregation; a selector's `=` matchers say which series it wants.
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_DURATION = re.compile(r"\[[^\]]*\]|\boffset\s+-?\w+")
_NAME = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{[^}]*\})?(\s*\()?")
_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')
_KEYWORDS = frozenset({"and", "or", "unless", "bool"})


def alerting_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def selectors(expr: str) -> list[tuple[str, dict[str, str]]]:
    """(metric name, {label: value} of its `=` matchers) for every series selector in `expr`."""
    expr = _DURATION.sub("", _LABEL_LIST.sub("", expr))
    return [(name, {label: value for label, op, value in _MATCHER.findall(matchers) if op == "="})
            for name, matchers, call in _NAME.findall(expr) if not call and name not in _KEYWORDS]
