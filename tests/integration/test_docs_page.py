"""GET /docs (SPEC §3 Operations): the API reference page, its files served by the service, the one HTML answer.

That it renders every operation in a browser with no network is tests/e2e/test_docs_page.py's to show.
"""

import base64
import hashlib
import re
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path

from web import docs_page

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_FILES = files("flask_openapi_swagger") / "templates" / "swagger"
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
RULE_ARGUMENT = re.compile(r"<(?:[^:>]+:)?([^>]+)>")
SOME_UUID = "0b7c2c1e-5d3a-4f5e-9a1b-2c3d4e5f6a7b"


def test_the_reference_is_an_html_page_anyone_may_read(client):
    page = client.get("/docs")

    assert page.status_code == 200
    assert page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert '<div id="swagger-ui">' in html
    assert '"/openapi.json"' in html


def test_the_page_loads_only_files_of_the_service_itself(client):
    page = client.get("/docs")
    html = page.get_data(as_text=True)

    loaded = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert loaded == ["data:,", "/docs/assets/swagger-ui.css", "/docs/assets/swagger-ui-bundle.js"]
    assert "http://" not in html and "https://" not in html


def test_the_content_security_policy_lets_the_browser_load_nothing_from_elsewhere(client):
    page = client.get("/docs")
    policy = dict(part.strip().split(" ", 1) for part in page.headers["Content-Security-Policy"].split(";"))
    [start] = INLINE_SCRIPT.findall(page.get_data(as_text=True))
    digest = base64.b64encode(hashlib.sha256(start.encode()).digest()).decode()

    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == f"'self' 'sha256-{digest}'"  # the one inline script, and nothing else inline
    for directive in ("style-src", "img-src", "font-src", "connect-src"):
        assert "http" not in policy[directive] and "*" not in policy[directive], directive
    assert policy["frame-ancestors"] == "'none'"


def test_the_script_and_stylesheet_are_the_pinned_packages_files_unchanged(client):
    css = client.get("/docs/assets/swagger-ui.css")
    js = client.get("/docs/assets/swagger-ui-bundle.js")

    assert (css.status_code, css.mimetype) == (200, "text/css")
    assert (js.status_code, js.mimetype) == (200, "text/javascript")
    assert css.get_data() == (PACKAGE_FILES / "css" / "swagger-ui.css").read_bytes()
    assert js.get_data() == (PACKAGE_FILES / "js" / "swagger-ui-bundle.js").read_bytes()
    pinned = f"{docs_page.SWAGGER_UI_PACKAGE}=={version(docs_page.SWAGGER_UI_PACKAGE)}"
    assert pinned in (ROOT / "requirements.txt").read_text().splitlines()


def test_no_other_file_is_served_and_every_error_around_the_page_is_json(client):
    answers = {
        "unknown file": client.get("/docs/assets/swagger-ui-standalone-preset.js"),
        "a path out of the folder": client.get("/docs/assets/..%2F..%2F..%2Fweb%2Fconfig.py"),
        "a trailing slash": client.get("/docs/"),
        "another method": client.post("/docs"),
    }

    for what, answer in answers.items():
        assert answer.status_code in (404, 405), what
        assert answer.mimetype == "application/json", what
        assert {"error", "detail"} <= set(answer.get_json()), what


def test_docs_is_the_only_html_answer_of_any_route(app, client):
    html = set()
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods:
            continue
        path = RULE_ARGUMENT.sub(lambda m: "swagger-ui.css" if m.group(1) == "name" else SOME_UUID, rule.rule)
        if client.get(path).mimetype == "text/html":
            html.add(rule.rule)

    assert html == {"/docs"}
