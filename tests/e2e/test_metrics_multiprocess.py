"""/metrics under gunicorn with two workers: every worker's counts are added up, whoever answers."""

import json
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.ops_server import fresh_database, http, running_gunicorn

pytestmark = pytest.mark.e2e

REQUESTS = 60


def services_served(base: str) -> float:
    status, _, body = http(base, "GET", "/metrics")
    assert status == 200
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if (sample.name == "http_request_duration_seconds_count"
                    and sample.labels == {"endpoint": "/api/services/", "method": "GET", "status": "200"}):
                return sample.value
    return 0.0


def test_two_workers_add_up_their_request_counts_log_only_json_and_open_no_control_socket(database_url, tmp_path):
    url = fresh_database(database_url, tmp_path)
    # Where gunicorn would put its control socket; gunicorn.conf.py turns it off (one path per user, clobbered).
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    with running_gunicorn(url, tmp_path, workers=2, env={"XDG_RUNTIME_DIR": str(runtime)}) as server:
        with ThreadPoolExecutor(max_workers=6) as pool:
            statuses = list(pool.map(lambda _: http(server.base, "GET", "/api/services/")[0], range(REQUESTS)))
        assert statuses == [200] * REQUESTS

        # Several scrapes, answered by either worker: each sees all the requests of both.
        assert [services_served(server.base) for _ in range(8)] == [REQUESTS] * 8

        # No PROMETHEUS_MULTIPROC_DIR was given: gunicorn.conf.py made one, and both workers wrote there.
        [metrics_dir] = [p for p in tmp_path.iterdir() if p.name.startswith("prometheus-multiproc-")]
        pids = {name.rsplit("_", 1)[1].removesuffix(".db") for name in os.listdir(metrics_dir)
                if name.startswith("histogram_")}
        assert len(pids) == 2, f"requests were served by workers {pids}; expected both"
        # gunicorn would open it once both workers were spawned; the second has served requests by now.
        assert list(runtime.iterdir()) == [], "gunicorn opened a control socket"
        assert "Control socket" not in server.log()
    # The directory gunicorn.conf.py made is removed when the server stops.
    assert not metrics_dir.exists()
    # Master, workers and the app all write through the app's renderer: every line is one JSON object.
    lines = [line for line in server.log().splitlines() if line.strip()]
    assert lines
    not_json = [line for line in lines if not _is_json_object(line)]
    assert not_json == [], f"{len(not_json)} of {len(lines)} lines are not JSON objects"
    assert any(json.loads(line).get("logger") == "gunicorn.error" for line in lines)


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except json.JSONDecodeError:
        return False
