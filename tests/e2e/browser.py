"""Headless Chromium (Debian's `chromium`) driven over the DevTools protocol, with no network but loopback.

The protocol runs over a pipe (`--remote-debugging-pipe`: commands in on fd 3,
answers and events out on fd 4, each a JSON text ended by NUL), so no port is
opened and nothing beyond the standard library is needed.

No network but loopback: every host name fails to resolve, and everything not
on loopback is sent to a proxy that is not there; Chromium's own background
traffic (updates, sync, safe browsing) is switched off. What the browser asked
for is read back from its network log (`--log-net-log`), which records every
URL request of every part of the browser, failed ones included.
"""

import base64
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.helpers import free_port

CHROMIUM_MISSING = ("the browser test needs Debian's chromium: apt-get install chromium "
                    "(.ci/run installs it)")
COMMAND_TIMEOUT_SECONDS = 30
STOP_TIMEOUT_SECONDS = 10


def chromium_binary() -> str | None:
    return shutil.which("chromium")


def offline_flags(user_data_dir: Path, net_log: Path) -> list[str]:
    dead_proxy = f"http://127.0.0.1:{free_port()}"  # nothing listens there: every proxied request fails
    return [
        "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio",
        "--remote-debugging-pipe", f"--user-data-dir={user_data_dir}", "--no-first-run", "--no-default-browser-check",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
        "--disable-default-apps", "--disable-domain-reliability", "--disable-breakpad",
        "--disable-client-side-phishing-detection",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--proxy-server={dead_proxy}",  # loopback is never proxied (Chromium's implicit bypass rules)
        f"--log-net-log={net_log}", "--net-log-capture-mode=Default",
    ]


def _high_fd(fd: int) -> int:
    """The same pipe end as a descriptor above 4, so bash can put the pipes on 3 and 4 without a clash.

    (bash, not sh: dash takes no descriptor over 9 in a redirection.)
    """
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class ProtocolError(AssertionError):
    pass


@dataclass
class Chromium:
    """One headless Chromium with one page, attached over the DevTools pipe."""

    workdir: Path
    proc: subprocess.Popen | None = None
    events: list[dict] = field(default_factory=list)
    _buffer: bytes = b""
    _next_id: int = 0
    session: str | None = None

    @property
    def net_log(self) -> Path:
        return self.workdir / "netlog.json"

    def start(self) -> "Chromium":
        self.workdir.mkdir(parents=True, exist_ok=True)
        commands_in, self._commands = (_high_fd(fd) for fd in os.pipe())
        self._answers, answers_out = (_high_fd(fd) for fd in os.pipe())
        binary = chromium_binary()
        args = offline_flags(self.workdir / "profile", self.net_log)
        self._log = open(self.workdir / "chromium.log", "ab")
        self.proc = subprocess.Popen(
            ["/bin/bash", "-c", f'exec "$@" 3<&{commands_in} 4>&{answers_out}', "chromium", binary, *args],
            pass_fds=(commands_in, answers_out), stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)
        os.close(commands_in)
        os.close(answers_out)
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Network", "Runtime"):
            self.call(f"{domain}.enable")
        return self

    def log_text(self) -> str:
        path = self.workdir / "chromium.log"
        return path.read_text(errors="replace")[-5000:] if path.exists() else ""

    # ---- the protocol ----------------------------------------------------------------------------

    def call(self, method: str, params: dict | None = None, *, timeout: float = COMMAND_TIMEOUT_SECONDS) -> dict:
        """Send one command (to the page once attached) and return its result; events that come first are kept."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if self.session is not None and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            for received in self._read(deadline - time.monotonic(), method):
                if received.get("id") == self._next_id:
                    if "error" in received:
                        raise ProtocolError(f"{method}: {received['error']}")
                    return received.get("result", {})
                if "method" in received:
                    self.events.append(received)

    def _read(self, timeout: float, waiting_for: str) -> list[dict]:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._answers], [], [], max(timeout, 0))
            if not ready:
                raise ProtocolError(f"no answer to {waiting_for} in time:\n{self.log_text()}")
            chunk = os.read(self._answers, 1 << 20)
            if not chunk:
                raise ProtocolError(f"chromium closed the pipe while waiting for {waiting_for}:\n{self.log_text()}")
            self._buffer += chunk
        *messages, self._buffer = self._buffer.split(b"\0")
        return [json.loads(m) for m in messages]

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (JSON-serialisable)."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise ProtocolError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float) -> None:
        """Poll until `expression` is truthy in the page."""
        deadline = time.monotonic() + timeout
        while not self.evaluate(expression):
            if time.monotonic() > deadline:
                raise ProtocolError(f"{expression!r} was still false after {timeout} s")
            time.sleep(0.2)

    # ---- what a test uses ------------------------------------------------------------------------

    def open(self, url: str, *, width: int = 1280, height: int = 900) -> None:
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        # Collected from the first script on: anything the page's Content-Security-Policy refused.
        self.call("Page.addScriptToEvaluateOnNewDocument", {"source": (
            "window.__refused = []; document.addEventListener('securitypolicyviolation', "
            "e => window.__refused.push(e.violatedDirective + ' ' + e.blockedURI));")})
        answer = self.call("Page.navigate", {"url": url})
        if answer.get("errorText"):
            raise ProtocolError(f"{url}: {answer['errorText']}")

    def screenshot(self, path: Path, *, clip: dict | None = None) -> Path:
        """A PNG of the whole page, or of `clip` ({x, y, width, height} in page coordinates)."""
        if clip is None:
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"]}
        params = {"format": "png", "captureBeyondViewport": True, "clip": {**clip, "scale": 1}}
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", params)["data"]))
        return path

    def requested_urls(self) -> list[str]:
        """Every URL the page asked for, as the protocol reported it (before any was sent or failed)."""
        return [e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"]

    def failed_loads(self) -> list[dict]:
        return [e["params"] for e in self.events if e["method"] == "Network.loadingFailed"]

    def exceptions(self) -> list[str]:
        return [e["params"]["exceptionDetails"].get("exception", {}).get("description")
                or e["params"]["exceptionDetails"].get("text", "")
                for e in self.events if e["method"] == "Runtime.exceptionThrown"]

    def stop(self) -> None:
        """Close the browser cleanly (so the network log is complete), killing it if it lingers."""
        if self.proc is None:
            return
        try:
            if self.proc.poll() is None:
                try:
                    self.session = None
                    self.call("Browser.close", timeout=STOP_TIMEOUT_SECONDS)
                except (ProtocolError, OSError):
                    pass
                try:
                    self.proc.wait(timeout=STOP_TIMEOUT_SECONDS)
                except subprocess.TimeoutExpired:
                    pass
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        finally:
            self.proc.wait(timeout=STOP_TIMEOUT_SECONDS)
            for fd in (self._commands, self._answers):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._log.close()
            self.proc = None


@contextmanager
def running_chromium(workdir: Path):
    """A started Chromium, stopped (its whole process group) whatever happens."""
    chromium = Chromium(workdir)
    try:
        yield chromium.start()
    finally:
        chromium.stop()


def _read_net_log(path: Path) -> tuple[dict, dict[int, str]]:
    """A network log Chromium wrote, and its event names by number; one cut short is read up to where it stops."""
    text = path.read_text()
    try:
        log = json.loads(text)
    except json.JSONDecodeError:  # a browser that was killed leaves the log without its closing brackets
        log = json.loads(text.rstrip().rstrip(",") + "]}")
    return log, {number: name for name, number in log["constants"]["logEventTypes"].items()}


def net_log_destinations(path: Path) -> list[str]:
    """Every address (host:port) the browser sent anything to: each TCP connection tried, each UDP datagram.

    A UDP socket that is connected but sends nothing puts nothing on the wire (Chromium connects one to a
    public address to learn which local address it would use): only the datagrams count.
    """
    log, names = _read_net_log(path)
    destinations, udp_peer = [], {}
    for event in log.get("events", []):
        name, params, source = names.get(event["type"]), event.get("params") or {}, event["source"]["id"]
        if name == "TCP_CONNECT_ATTEMPT" and "address" in params:
            destinations.append(params["address"])
        elif name == "UDP_CONNECT" and "address" in params:
            udp_peer[source] = params["address"]
        elif name in ("UDP_BYTES_SENT", "UDP_SEND_ERROR"):
            destinations.append(params.get("address") or udp_peer.get(source, "unknown:0"))
    return destinations


def net_log_urls(path: Path) -> list[str]:
    """Every URL any part of the browser asked for (a request to a proxy that is not there included)."""
    log, names = _read_net_log(path)
    return [event["params"]["url"] for event in log.get("events", [])
            if names.get(event["type"]) == "URL_REQUEST_START_JOB" and "url" in event.get("params", {})]
