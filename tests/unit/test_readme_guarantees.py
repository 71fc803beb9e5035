"""Every test the README's "Guarantees" section names exists: a renamed or deleted test leaves no claim unproven."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# `tests/x.py::test_name`, or `::test_name` for another test of the file named just before.
NAMED = re.compile(r"`(tests/[\w/]+\.py)?(?:::(test_\w+))?`")


def guarantees_section() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("\n## Guarantees\n", 1)[1].split("\n## ", 1)[0]


def named_tests() -> list[tuple[str, str | None]]:
    named, path = [], None
    for file, test in NAMED.findall(guarantees_section()):
        path = file or path
        if path is not None and (file or test):
            named.append((path, test or None))
    return named


def test_every_test_the_guarantees_name_exists():
    named = named_tests()
    assert len(named) >= 20, named
    missing = [(path, test) for path, test in named if not (ROOT / path).is_file()
               or (test and not re.search(rf"^def {test}\(", (ROOT / path).read_text(), re.MULTILINE))]
    assert missing == []
