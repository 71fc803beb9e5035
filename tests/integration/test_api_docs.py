"""docs/API.md, the contract a user reads, says what the served /openapi.json and the configuration say.

How the page is read (keep to it when editing docs/API.md):
- a section is everything from its `## Title` line to the next `## ` line;
- a section's table is the first run of lines starting with `|` in it; its first two lines (the
  header and the `|---|` line) are skipped, and a cell's backticks are dropped;
- `## Endpoints`: one row per operation, `| METHOD | `/path` | auth | statuses, success first |`,
  auth being `none`, `signature` (no token, a signed request), `bearer` or `admin` (403 for others);
  and one `#### METHOD /path` heading per operation, where it is described;
- `## Reasons`: `| status | `reason` | when |`, every reason a 401 (of a bearer token), 409 or 429 answers with;
- `## Deleting a cart: the timing rules`: `| `deletion reason` | ... |`;
- `## The webhook`: `| `outcome` | meaning |`;
- `## Configuration`: `| `VARIABLE` | `default` | meaning |`, every variable web.config.load reads.
"""

import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from web.config import load

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "API.md"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
HEADING = re.compile(rf"^#### ({'|'.join(METHODS)}) (/\S*)$", re.MULTILINE)


def section(title: str, text: str | None = None) -> str:
    text = API_DOC.read_text() if text is None else text
    parts = re.split(rf"^## {re.escape(title)}\n", text, maxsplit=1, flags=re.MULTILINE)
    assert len(parts) == 2, f"docs/API.md has no '## {title}' section"
    return re.split(r"^## ", parts[1], maxsplit=1, flags=re.MULTILINE)[0]


def table(title: str) -> list[list[str]]:
    """The rows of the first table of a section, cells stripped of spaces and backticks."""
    lines = section(title).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    rows = [[cell.strip().replace("`", "") for cell in line.strip().strip("|").split("|")]
            for line in lines[start + 2:end]]
    assert rows, f"the table of '## {title}' is empty"
    return rows


@pytest.fixture
def document(client) -> dict:
    return client.get("/openapi.json").json


def resolve(document: dict, schema: dict) -> Iterator[dict]:
    """The object schemas `schema` may be: $refs followed, anyOf/oneOf alternatives each."""
    if "$ref" in schema:
        yield from resolve(document, document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]])
    elif "anyOf" in schema or "oneOf" in schema:
        for alternative in schema.get("anyOf", schema.get("oneOf")):
            yield from resolve(document, alternative)
    else:
        yield schema


def enumerated(document: dict, schema: dict, *path: str) -> set[str]:
    """The values the property at `path` (through nested objects) may take, from its enum or const."""
    values: set[str] = set()
    for alternative in resolve(document, schema):
        if not path:
            assert "enum" in alternative or "const" in alternative, f"not enumerated: {alternative}"
            values |= set(alternative.get("enum", [alternative.get("const")]))
        else:
            values |= enumerated(document, alternative["properties"][path[0]], *path[1:])
    return values


def answer_schema(document: dict, method: str, path: str, status: str) -> dict:
    return document["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]


def operations(document: dict) -> dict[tuple[str, str], dict]:
    return {(method.upper(), path): op for path, methods in document["paths"].items()
            for method, op in methods.items()}


def test_the_endpoint_table_lists_every_operation_of_the_served_document_and_nothing_else(document):
    listed = {(method, path) for method, path, *_ in table("Endpoints")}
    assert listed == set(operations(document))


def test_every_operation_has_its_own_heading_and_no_heading_names_another(document):
    headings = HEADING.findall(section("Endpoints"))
    assert sorted(headings) == sorted(set(headings)), "an operation has two headings"
    assert set(headings) == set(operations(document))


def test_the_endpoint_table_gives_each_operation_its_documented_statuses_and_auth(document):
    served = operations(document)
    for method, path, auth, statuses in table("Endpoints"):
        op = served[(method, path)]
        listed = [s.strip() for s in statuses.split(",")]
        success = min(s for s in op["responses"] if s.startswith("2"))
        assert (listed[0], sorted(listed)) == (success, sorted(op["responses"])), (method, path)
        needs_token = op["security"] != []
        assert auth in {"none", "signature", "bearer", "admin"}, (method, path, auth)
        assert (auth in {"bearer", "admin"}) == needs_token, (method, path, auth)
        assert (auth == "admin") == ("403" in op["responses"]), (method, path, auth)


def test_the_reasons_table_lists_every_401_409_and_429_reason_of_the_served_document_and_nothing_else(document):
    listed: dict[str, set[str]] = {}
    for status, reason, _when in table("Reasons"):
        listed.setdefault(status, set()).add(reason)
    served: dict[str, set[str]] = {}
    for (method, path), op in operations(document).items():
        # A 401 has a reason only where a bearer token is checked (an expired one); a wrong password has none.
        for status in ("401", "409", "429") if op["security"] else ("409", "429"):
            if status in op["responses"]:
                schema = answer_schema(document, method.lower(), path, status)
                served.setdefault(status, set()).update(enumerated(document, schema, "reason"))
    assert set(served) == {"401", "409", "429"}
    assert listed == served


def test_the_deletion_reasons_are_those_deletion_status_answers_with(document):
    listed = {row[0] for row in table("Deleting a cart: the timing rules")}
    schema = answer_schema(document, "get", "/api/cart/carts/{cart_id}/deletion_status/", "200")
    assert listed == enumerated(document, schema, "deletion_info", "reason")


def test_the_webhook_outcomes_are_those_the_webhook_answers_with(document):
    listed = {row[0] for row in table("The webhook")}
    schema = answer_schema(document, "post", "/api/payments/webhook/", "200")
    assert listed == enumerated(document, schema, "outcome")


class ReadNames(Mapping):
    """An empty environment that remembers every name looked up in it."""

    def __init__(self):
        self.read: set[str] = set()

    def __getitem__(self, name):
        self.read.add(name)
        raise KeyError(name)

    def __iter__(self):
        return iter(())

    def __len__(self):
        return 0


def as_written(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def test_the_configuration_table_names_every_variable_the_app_reads_with_its_default():
    environ = ReadNames()
    settings = load("instance", environ=environ)
    rows = table("Configuration")
    assert {name for name, *_ in rows} == environ.read
    assert {name: default for name, default, _ in rows} == {name: as_written(settings[name]) for name in environ.read}
