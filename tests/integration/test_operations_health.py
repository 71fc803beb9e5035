"""/healthz (SPEC §3 Operations): 200 with the database and scheduler state, 503 when the database is down."""

from types import SimpleNamespace

from web.ops_api import scheduler_state

# Nothing listens on port 1: the connection is refused at once.
UNREACHABLE_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:1/x?connect_timeout=2"


def test_healthz_says_ok_with_the_database_and_a_disabled_scheduler(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok", "scheduler": "disabled"}
    assert response.headers["X-Request-ID"]


def test_healthz_reports_the_scheduler_it_finds_in_the_app(app, client):
    app.extensions["scheduler"] = SimpleNamespace(state=1, running=True)
    assert client.get("/healthz").json["scheduler"] == "running"
    app.extensions["scheduler"] = SimpleNamespace(state=0, running=False)
    assert client.get("/healthz").json["scheduler"] == "stopped"


def test_scheduler_state_reads_apscheduler_states_or_a_running_flag():
    assert scheduler_state(None) == "disabled"
    assert scheduler_state(SimpleNamespace(state=2)) == "paused"
    assert scheduler_state(SimpleNamespace(running=False)) == "stopped"


def test_healthz_answers_503_json_when_the_database_cannot_be_reached(make_app):
    app = make_app(DATABASE_URL=UNREACHABLE_DATABASE)
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.is_json
    assert response.json["status"] == "unavailable"
    assert response.json["database"] == "unreachable"
    assert response.json["scheduler"] == "disabled"
    assert response.json["error"] and response.json["detail"]


def test_api_endpoints_answer_a_json_503_too_when_the_database_is_down(make_app):
    app = make_app(DATABASE_URL=UNREACHABLE_DATABASE)
    response = app.test_client().get("/api/services/")
    assert response.status_code == 503 and response.json["error"] == "Service Unavailable"
    assert response.headers["Retry-After"] == "1"
