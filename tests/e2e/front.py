"""The recommended production set-up for end-to-end tests: nginx (deploy/nginx.conf) in front of gunicorn."""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from deploy import nginx_config
from tests.e2e.helpers import Http, free_port

START_TIMEOUT_SECONDS = 15


def nginx_missing() -> str | None:
    """None if nginx and its njs module are installed, else what is missing."""
    nginx = shutil.which("nginx")
    if nginx is None:
        return "front tests need nginx: apt-get install nginx libnginx-mod-http-js"
    version = subprocess.run([nginx, "-V"], capture_output=True, text=True).stderr
    modules = re.search(r"--modules-path=(\S+)", version)
    module = Path(modules.group(1) if modules else "/usr/lib/nginx/modules") / "ngx_http_js_module.so"
    if not module.exists():
        return f"front tests need nginx's njs module ({module}): apt-get install libnginx-mod-http-js"
    return None


class NginxFront:
    """`nginx -c <deploy/nginx.conf filled in> -g 'daemon off;'` on a free loopback port, in front of `upstream`."""

    def __init__(self, upstream_port: int):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.http = Http(self.base)
        # Not under pytest's 0700 tmp: started by root, nginx's workers run as nobody and write temp files here.
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="front-nginx-"))
        self.runtime_dir.chmod(0o755)
        self.config = self.runtime_dir / "nginx.conf"
        self.config.write_text(nginx_config(f"127.0.0.1:{self.port}", f"127.0.0.1:{upstream_port}",
                                            self.runtime_dir))
        self.proc: subprocess.Popen | None = None

    def start(self) -> "NginxFront":
        self._log = open(self.runtime_dir / "nginx.out", "ab")
        self.proc = subprocess.Popen(
            [shutil.which("nginx"), "-e", str(self.runtime_dir / "error.log"), "-c", str(self.config),
             "-g", "daemon off;"], stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self.http.get("/healthz", timeout=2).status == 200:
                return self
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"nginx did not answer within {START_TIMEOUT_SECONDS} s:\n{self.log_text()}")

    def log_text(self) -> str:
        return "\n".join(path.read_text(errors="replace") for path in
                         (self.runtime_dir / "nginx.out", self.runtime_dir / "error.log") if path.exists())

    def stop(self) -> None:
        """SIGQUIT (graceful) to the group, then SIGKILL if it lingers; the runtime directory goes too."""
        if self.proc is not None:
            try:
                if self.proc.poll() is None:
                    self.proc.send_signal(signal.SIGQUIT)
                    try:
                        self.proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        pass
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
            self._log.close()
        shutil.rmtree(self.runtime_dir, ignore_errors=True)
