"""GET /docs: the API reference, Swagger UI rendering /openapi.json; the one HTML page of the service.

Swagger UI's script and stylesheet come from the `flask-openapi-swagger`
package (requirements.txt pins it; its files are those of Swagger UI's own
`swagger-ui-dist` release of the same version) and are served from here, so
the page needs no network but this service's. Its Content-Security-Policy lets
the browser load nothing from anywhere else either.
"""

import base64
import hashlib
import json
from importlib.metadata import version
from importlib.resources import files

from flask import Blueprint, Response, send_from_directory, url_for
from werkzeug.exceptions import NotFound

bp = Blueprint("docs", __name__)

SWAGGER_UI_PACKAGE = "flask-openapi-swagger"
SWAGGER_UI_VERSION = version(SWAGGER_UI_PACKAGE)
_SWAGGER_UI_DIR = str(files("flask_openapi_swagger") / "templates" / "swagger")
# The only files the page loads; nothing else of the package is served.
ASSETS = {"swagger-ui.css": "css/swagger-ui.css", "swagger-ui-bundle.js": "js/swagger-ui-bundle.js"}

TITLE = "Cart, payment and booking service: API reference"
_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{css}">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{js}"></script>
<script>{start}</script>
</body>
</html>
"""
# BaseLayout: no top bar that would load another document; validatorUrl null: no badge fetched from outside.
_START = ('window.ui = SwaggerUIBundle({{url: {spec}, dom_id: "#swagger-ui", layout: "BaseLayout", '
          'deepLinking: true, validatorUrl: null, displayRequestDuration: true}});')


def content_security_policy(inline_script: str) -> str:
    """Only this service's own files, plus the one inline script that starts Swagger UI (by its hash)."""
    digest = base64.b64encode(hashlib.sha256(inline_script.encode()).digest()).decode()
    # Swagger UI sets style attributes and draws its icons from data: URIs in its stylesheet.
    return (f"default-src 'none'; script-src 'self' 'sha256-{digest}'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'")


@bp.get("/docs")
def api_reference():
    """This API's reference, readable in a browser (Swagger UI, served by the service itself)."""
    start = _START.format(spec=json.dumps(url_for("openapi.openapi")))
    page = _PAGE.format(title=TITLE, css=url_for("docs.asset", name="swagger-ui.css"),
                        js=url_for("docs.asset", name="swagger-ui-bundle.js"), start=start)
    return Response(page, mimetype="text/html",
                    headers={"Content-Security-Policy": content_security_policy(start),
                             "X-Content-Type-Options": "nosniff"})


@bp.get("/docs/assets/<name>")
def asset(name: str):
    """Swagger UI's script or stylesheet, from the installed package."""
    if name not in ASSETS:
        raise NotFound("The API reference has no such file.")
    response = send_from_directory(_SWAGGER_UI_DIR, ASSETS[name])
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
