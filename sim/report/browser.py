"""A rendered report seen through headless Chromium.

The test suite opens reports with it to check that they render without
console errors or requests to other hosts, and `docs/screenshots.py` takes
the README's pictures with it. It drives Chromium over the DevTools protocol
through the pipe Chromium offers on its file descriptors 3 (commands in) and
4 (replies and events out), so it needs no network port and no extra package.
"""

import base64
import fcntl
import json
import logging
import os
import select
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CHROMIUM = Path("/usr/bin/chromium")

# Flags for a root shell on a machine without a screen or outside network:
# no sandbox (it refuses to run as root), no GPU, and none of the background
# traffic (updates, sync, field trials) that would try to reach other hosts.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)


class BrowserError(RuntimeError):
    """Chromium could not be started, or stopped answering."""


class Chromium:
    """One headless Chromium with one page, closed on leaving a `with` block.

    Every event the page sends is kept in `events`, in arrival order, so a
    caller can look for console errors and requests after the fact.
    """

    def __init__(
        self,
        executable: Path = CHROMIUM,
        width: int = 1280,
        height: int = 800,
        timeout: float = 60.0,
    ) -> None:
        self.executable = Path(executable)
        self.width = width
        self.height = height
        self.timeout = timeout
        self.events: list[dict[str, Any]] = []
        self._profile = Path(tempfile.mkdtemp(prefix="presence-sim-chromium-"))
        self._buffer = b""
        self._next_id = 0
        self._pid = 0
        self._session = ""

    def __enter__(self) -> "Chromium":
        self._start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _start(self) -> None:
        if not self.executable.exists():
            raise BrowserError(f"{self.executable} not found")
        commands_read, commands_write = os.pipe()
        replies_read, replies_write = os.pipe()
        # Lift the child's ends above 4 first, so that placing them on 3 and 4
        # cannot overwrite one with the other.
        child_in = fcntl.fcntl(commands_read, fcntl.F_DUPFD_CLOEXEC, 10)
        child_out = fcntl.fcntl(replies_write, fcntl.F_DUPFD_CLOEXEC, 10)
        for fd in (commands_read, replies_write):
            os.close(fd)
        stderr = self._profile / "chromium.log"
        arguments = [
            str(self.executable),
            *FLAGS,
            f"--user-data-dir={self._profile / 'profile'}",
            f"--window-size={self.width},{self.height}",
            "about:blank",
        ]
        try:
            self._pid = os.posix_spawn(
                str(self.executable),
                arguments,
                os.environ,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (
                        os.POSIX_SPAWN_OPEN,
                        1,
                        str(stderr),
                        os.O_WRONLY | os.O_CREAT,
                        0o600,
                    ),
                    (os.POSIX_SPAWN_DUP2, 1, 2),
                    (os.POSIX_SPAWN_DUP2, child_in, 3),
                    (os.POSIX_SPAWN_DUP2, child_out, 4),
                ],
                setsid=True,
            )
        finally:
            os.close(child_in)
            os.close(child_out)
        self._commands = commands_write
        self._replies = replies_read

        target = self.call("Target.createTarget", {"url": "about:blank"})
        attached = self.call(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        self._session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=True)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {
                "width": self.width,
                "height": self.height,
                "deviceScaleFactor": 1,
                "mobile": False,
            },
            session=True,
        )

    def call(
        self, method: str, params: dict[str, Any] | None = None, session: bool = False
    ) -> dict[str, Any]:
        """Send one command and return its result; events met on the way are kept."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method}
        message["params"] = params or {}
        if session:
            message["sessionId"] = self._session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def _receive(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._replies], [], [], max(0.0, left))
            if not ready:
                raise BrowserError(f"Chromium did not answer within {self.timeout:g} s")
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise BrowserError(f"Chromium exited; its log:\n{self.log_tail()}")
            self._buffer += chunk
        text, _, self._buffer = self._buffer.partition(b"\0")
        message = json.loads(text)
        if "method" in message:
            self.events.append(message)
        return message

    def wait_for(self, method: str, since: int = 0) -> dict[str, Any]:
        """The first event named `method` from position `since` of `events` on."""
        while True:
            for event in self.events[since:]:
                if event["method"] == method:
                    return event
            since = len(self.events)
            self._receive()

    def open(self, path: Path) -> None:
        """Load a local file and wait until it has loaded, images included."""
        mark = len(self.events)
        self.call("Page.navigate", {"url": Path(path).resolve().as_uri()}, session=True)
        self.wait_for("Page.loadEventFired", mark)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True},
            session=True,
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, selector: str | None = None) -> bytes:
        """PNG of the first screen, or of the element `selector` picks."""
        params: dict[str, Any] = {"format": "png"}
        if selector is not None:
            box = self.evaluate(
                f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
                ".getBoundingClientRect(); return {x: r.left + window.scrollX, "
                "y: r.top + window.scrollY, width: r.width, height: r.height}; })()"
            )
            params |= {"clip": box | {"scale": 1}, "captureBeyondViewport": True}
        return base64.b64decode(
            self.call("Page.captureScreenshot", params, True)["data"]
        )

    def console_errors(self) -> list[str]:
        """Errors the page reported: console.error, uncaught exceptions, log errors."""
        found = []
        for event in self.events:
            params = event.get("params", {})
            if event["method"] == "Runtime.exceptionThrown":
                found.append(json.dumps(params.get("exceptionDetails", {}))[:500])
            elif event["method"] == "Runtime.consoleAPICalled" and params.get(
                "type"
            ) in ("error", "assert"):
                found.append(json.dumps(params.get("args", []))[:500])
            elif event["method"] == "Log.entryAdded":
                entry = params.get("entry", {})
                if entry.get("level") == "error":
                    found.append(f"{entry.get('source')}: {entry.get('text')}")
        return found

    def requested_urls(self) -> list[str]:
        """Every URL the page asked the network stack for."""
        return [
            event["params"]["request"]["url"]
            for event in self.events
            if event["method"] == "Network.requestWillBeSent"
        ]

    def log_tail(self, lines: int = 20) -> str:
        path = self._profile / "chromium.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def close(self) -> None:
        """Ask Chromium to quit, then make sure it has, and remove its profile."""
        if self._pid:
            try:
                self.call("Browser.close")
            except (BrowserError, OSError):
                log.info("Chromium did not close cleanly; stopping it")
            self._reap()
            for fd in (self._commands, self._replies):
                os.close(fd)
        shutil.rmtree(self._profile, ignore_errors=True)

    def _reap(self) -> None:
        group = self._pid
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and self._pid:
            if os.waitpid(self._pid, os.WNOHANG)[0]:
                self._pid = 0
            else:
                time.sleep(0.05)
        # Chromium leads its own process group: whatever of it is left, its
        # helper processes included, goes with the group.
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self._pid:
            os.waitpid(self._pid, 0)
            self._pid = 0
