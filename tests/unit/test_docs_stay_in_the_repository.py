"""A clone is complete: the README and docs/ point at nothing outside the repository, and at nothing missing.

A path, to these tests, is a run of `[A-Za-z0-9_.{},/-]` holding a `/` whose first segment is a top-level
entry of the repository (not one .gitignore names), such as `persistence/writer.py` or
`tests/{unit,integration,e2e}` (braces expanded); and the target of every relative Markdown link.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
OUTSIDE = re.compile(r"(?<![.\w])\.\./|\bshared/")  # `.../flask/app.py` in a traceback is not a parent directory
PATHLIKE = re.compile(r"[\w.{},/-]*/[\w.{},/-]*")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def ignored() -> set[str]:
    names = {".git"}
    for line in (ROOT / ".gitignore").read_text().splitlines():
        line = line.strip().strip("/")
        if line and not line.startswith("#") and "/" not in line:
            names.add(line)
    return names


TOP = {entry.name for entry in ROOT.iterdir()} - ignored()


def expand(path: str) -> list[str]:
    match = re.search(r"\{([^{}]*)\}", path)
    if match is None:
        return [path]
    return [p for choice in match.group(1).split(",")
            for p in expand(path[:match.start()] + choice + path[match.end():])]


def paths_named(text: str) -> set[str]:
    named = set()
    for token in PATHLIKE.findall(text):
        token = token.rstrip(".,")
        if token.split("/", 1)[0] in TOP:
            named.update(expand(token))
    return named


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_there_is_a_readme_and_an_api_page():
    assert [page_id(p) for p in PAGES][:1] == ["README.md"]
    assert ROOT / "docs" / "API.md" in PAGES


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_a_page_refers_to_nothing_outside_the_repository(page):
    outside = [(number, line) for number, line in enumerate(page.read_text().splitlines(), 1) if OUTSIDE.search(line)]
    assert outside == []


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_path_a_page_names_exists_in_the_repository(page):
    named = paths_named(page.read_text())
    assert named, "no path found: the convention above no longer matches the page"
    assert sorted(p for p in named if not (ROOT / p).exists()) == []


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_relative_link_of_a_page_leads_to_a_file_of_the_repository(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:|#", target):
            continue
        resolved = (page.parent / target.split("#", 1)[0]).resolve()
        assert resolved.is_relative_to(ROOT) and resolved.exists(), target


def test_the_readmes_first_screen_says_where_the_contract_is_and_that_openapi_json_is_served():
    first_screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:24])
    assert "(docs/API.md)" in first_screen
    assert "/openapi.json" in first_screen
