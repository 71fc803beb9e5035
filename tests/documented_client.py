"""A test client that holds every answer of the suite to the served OpenAPI document.

The answers are built from the models of `web/responses.py`, and the document
is generated from the same models; with this client every answer of every test
(not a sample) must also have a documented status and match its schema, so a
view that answers outside its model (an error, a hand-built body) is caught.
"""

import re
from functools import cache

import jsonschema_rs
from flask.testing import FlaskClient
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect

from web.openapi import build_document

RULE_ARGUMENT = re.compile(r"<(?:[^:>]+:)?([^>]+)>")


@cache
def _document(gateway: str) -> dict:
    return build_document(gateway)


@cache
def _validator(gateway: str, path: str, method: str, status: str):
    answer = _document(gateway)["paths"][path][method]["responses"][status]
    schema = answer["content"]["application/json"]["schema"]
    return jsonschema_rs.validator_for({**schema, "components": _document(gateway)["components"]})


class DocumentedClient(FlaskClient):
    def open(self, *args, **kwargs):
        response = super().open(*args, **kwargs)
        request = response.request
        try:
            rule, _ = self.application.url_map.bind("localhost").match(request.path, request.method,
                                                                        return_rule=True)
        except (NotFound, MethodNotAllowed, RequestRedirect):
            return response  # no operation to hold it to (unknown paths are answered by the error envelope)
        path, method = RULE_ARGUMENT.sub(r"{\1}", rule.rule), request.method.lower()
        # The document of this app: the webhook's body is its gateway's.
        gateway = self.application.extensions["gateway"].name
        document = _document(gateway)
        operation = document["paths"].get(path, {}).get(method)
        if operation is None or method == "head":
            return response  # not an API operation (a test's own route, HEAD)
        status = str(response.status_code)
        if status == "500":  # a bug, or a fault a test injected: undocumented on purpose, still the envelope
            assert response.mimetype == "application/json" and {"error", "detail"} <= set(response.get_json())
            return response
        assert status in operation["responses"], f"{method.upper()} {path} answered undocumented {status}"
        documented = operation["responses"][status]
        if "content" not in documented:  # documented with no body (a 204): none, and no type claiming one
            assert response.get_data() == b"" and "Content-Type" not in response.headers, (
                f"{method.upper()} {path} answered {status} with a body or a Content-Type, documented with neither")
            return response
        assert response.mimetype in documented["content"], (
            f"{method.upper()} {path} answered {status} as {response.mimetype}, documented as {list(documented['content'])}")
        required = {name for name in documented["headers"]
                    if document["components"]["headers"][name].get("required")}
        assert required <= set(response.headers.keys()), (
            f"{method.upper()} {path} {status} lacks a required header: {required}")
        if response.mimetype == "application/json":
            _validator(gateway, path, method, status).validate(response.get_json())
        return response
