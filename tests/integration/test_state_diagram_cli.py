"""`flask --app web state-diagram cart|payment|refund` (SPEC §4), and the README's copies of its output."""

import re
from pathlib import Path

import pytest

from machines import CART_MACHINE, PAYMENT_MACHINE, REFUND_MACHINE

README = Path(__file__).resolve().parents[2] / "README.md"
HEADINGS = {"cart": "### Cart", "payment": "### Payment", "refund": "### Refund"}


def diagram(runner, machine: str) -> str:
    result = runner.invoke(args=["state-diagram", machine])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("table", [CART_MACHINE, PAYMENT_MACHINE, REFUND_MACHINE], ids=lambda t: t.entity)
def test_the_diagram_is_mermaid_with_every_state_and_every_transition_of_the_table(runner, table):
    text = diagram(runner, table.entity)

    assert text.startswith("stateDiagram-v2\n")
    assert f"[*] --> {table.initial.value}" in text
    for state in table.states:
        assert f'state "{state.value}" as {state.value}' in text
    edges = re.findall(r"^\s*(\w+) --> (\w+): (.+)$", text, re.MULTILINE)
    drawn = {(src, dst, trigger.split(" [")[0]) for src, dst, label in edges for trigger in label.split(" | ")}
    expected = {(src.value, table.destination(trigger).value, trigger)
                for trigger in table.triggers for src in table.sources(trigger)}
    assert drawn == expected


def test_guards_are_shown_on_their_transitions(runner):
    assert "PENDING --> SUCCESS: succeed [capture_verified]" in diagram(runner, "payment")
    assert "ACTIVE --> DELETED: delete [no_fresh_open_payments]" in diagram(runner, "cart")


def test_an_unknown_machine_is_refused(runner):
    result = runner.invoke(args=["state-diagram", "booking"])
    assert result.exit_code != 0
    assert "cart" in result.output and "payment" in result.output


def readme_diagram(readme: str, machine: str) -> str | None:
    """The ```mermaid block under `### Cart` / `### Payment` in the README's `## State machines` section."""
    section = re.search(r"^## State machines\s*$(.*?)(?=^## |\Z)", readme, re.MULTILINE | re.DOTALL)
    if section is None:
        return None
    block = re.search(rf"^{re.escape(HEADINGS[machine])}\s*$.*?^```mermaid\n(.*?)^```", section.group(1),
                      re.MULTILINE | re.DOTALL)
    return block.group(1) if block else None


@pytest.mark.parametrize("machine", ["cart", "payment", "refund"])
def test_the_readme_shows_exactly_what_the_command_prints(runner, machine):
    copy = readme_diagram(README.read_text(), machine)
    assert copy is not None, (f"README.md needs a '## State machines' section with '{HEADINGS[machine]}' and a "
                              f"```mermaid block: paste `flask --app web state-diagram {machine}` there")
    assert copy == diagram(runner, machine), f"README's {machine} diagram is out of date: paste the command's output"


def test_the_readme_extraction_finds_each_block_under_its_heading():
    readme = ("# X\n\n## State machines\n\n### Cart\n\n```mermaid\nA\n```\n\n### Payment\n\n"
              "```mermaid\nB\nC\n```\n\n## Next\n\n### Cart\n\n```mermaid\nZ\n```\n")
    assert readme_diagram(readme, "cart") == "A\n"
    assert readme_diagram(readme, "payment") == "B\nC\n"
