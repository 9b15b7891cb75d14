"""The real ComfyUI frontend in headless Chromium, on the live test server (`comfy_host`).

- `frontend_log` (module): what went wrong in the page: console errors, uncaught exceptions, failed
  requests and HTTP error responses, each as one line of text.
- `page` (module): a playwright (sync API) Page with the ComfyUI UI of `comfy_host` loaded: the
  frontend's settings seeded so that no dialog or banner covers the canvas, and `window.app`, its
  graph, canvas and extensions ready.

Chromium is the system's (`scripts/install_browser.sh` installs Debian's; CHROMIUM=/path overrides
/usr/bin/chromium) and playwright comes from tests/requirements.txt without its own browsers. Without
either, these tests skip, unless RALU_REQUIRE_HOST=1 (set by `make test` and CI) makes that a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REQUIRE_HOST = os.environ.get("RALU_REQUIRE_HOST", "") not in ("", "0")
CHROMIUM = os.environ.get("CHROMIUM") or "/usr/bin/chromium"
# Headless flags that work on these machines (no sandbox, no GPU, no outside connections).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
VIEWPORT = {"width": 1600, "height": 1000}
READY_TIMEOUT_MS = 60_000
# Merged into user/default/comfy.settings.json before the page opens.
FRONTEND_SETTINGS = {
    "Comfy.TutorialCompleted": True,  # no templates dialog over the canvas
    "Comfy.VueNodes.Enabled": False,  # the classic canvas nodes, where our DOM widget lives
    "Comfy.Minimap.Visible": False,  # keeps the minimap off screenshots
    # Each test module's page starts with an empty workspace, not the previous module's open workflows.
    "Comfy.Workflow.Persist": False,
}
# The frontend's "Introducing Nodes 2.0" banner remembers its dismissal here (localStorage).
DISMISS_BANNERS_SCRIPT = "try { localStorage.setItem('vueNodesBannerDismissed', 'true'); } catch (e) {}"
APP_READY = """() => !!(window.app && window.LiteGraph && window.app.graph && window.app.canvas
    && window.app.vueAppReady && window.app.extensions && window.app.extensions.length)"""


# Harmless noise: the page cannot reach outside hosts (the server's CSP and no network): e.g. the
# missing-models dialog asks huggingface.co for file sizes, the manager asks api.comfy.org.
OUTSIDE_HOST_NOISE = re.compile(
    r"^[^\n]*(https?://(?!127\.0\.0\.1[:/])[^\s'\"]+|Error fetching file size: TypeError: Failed to fetch)"
)


def _skip_or_fail(reason: str):
    if REQUIRE_HOST:
        pytest.fail(f"RALU_REQUIRE_HOST is set but {reason}", pytrace=False)
    pytest.skip(reason)


@dataclass
class FrontendLog:
    """Problems the page reported, in order; `mark()` / `since()` take what came after a point.
    `requested` holds the URL of every request the page made."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)
    # Warnings are not problems in general, but the frontend warns about imports of its internals.
    console_warnings: list[str] = field(default_factory=list)

    def all(self) -> list[str]:
        return (
            [f"console error: {e}" for e in self.console_errors]
            + [f"uncaught exception: {e}" for e in self.page_errors]
            + [f"request failed: {e}" for e in self.failed_requests]
        )

    def mentioning(self, *words: str) -> list[str]:
        """Entries that contain any of `words` (case-insensitive)."""
        lowered = [w.lower() for w in words]
        return [entry for entry in self.all() if any(w in entry.lower() for w in lowered)]

    def mark(self) -> tuple[int, int, int]:
        return len(self.console_errors), len(self.page_errors), len(self.failed_requests)

    def since(self, mark: tuple[int, int, int], outside_hosts: bool = False) -> list[str]:
        """Entries after `mark`; unless `outside_hosts`, not those about unreachable outside hosts."""
        later = FrontendLog(
            self.console_errors[mark[0] :], self.page_errors[mark[1] :], self.failed_requests[mark[2] :]
        ).all()
        return later if outside_hosts else [e for e in later if not OUTSIDE_HOST_NOISE.search(e)]


@pytest.fixture(scope="session")
def _browser_prerequisites() -> str:
    """The Chromium executable; skip (or fail under RALU_REQUIRE_HOST) when it or playwright is missing.
    Checked before the server starts, so a machine without a browser skips at once."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as err:
        _skip_or_fail(f"playwright is not installed ({err}); `make setup` installs tests/requirements.txt")
    executable = CHROMIUM if os.path.isabs(CHROMIUM) else shutil.which(CHROMIUM)
    if not executable or not os.access(executable, os.X_OK):
        _skip_or_fail(f"no Chromium at {CHROMIUM}; run `bash scripts/install_browser.sh` or set CHROMIUM=")
    return executable


@pytest.fixture(scope="session")
def browser_context(_browser_prerequisites, comfy_host, tmp_path_factory):
    """A headless Chromium with its own fresh profile, through playwright's sync API."""
    from playwright.sync_api import sync_playwright

    settings_path = comfy_host.base_dir / "user" / "default" / "comfy.settings.json"
    settings_path.parent.mkdir(parents=True, exist_ok=True)
    settings = json.loads(settings_path.read_text()) if settings_path.exists() else {}
    settings_path.write_text(json.dumps({**settings, **FRONTEND_SETTINGS}, indent=1))

    profile = tmp_path_factory.mktemp("chromium-profile")
    manager = sync_playwright().start()
    try:
        context = manager.chromium.launch_persistent_context(
            str(profile),
            executable_path=_browser_prerequisites,
            headless=True,
            args=list(CHROMIUM_FLAGS),
            viewport=VIEWPORT,
        )
    except Exception as err:
        manager.stop()
        _skip_or_fail(f"Chromium ({_browser_prerequisites}) did not start under playwright: {err}")
    context.add_init_script(DISMISS_BANNERS_SCRIPT)
    try:
        yield context
    finally:
        context.close()
        manager.stop()


@pytest.fixture(scope="module")
def frontend_log() -> FrontendLog:
    return FrontendLog()


def _describe_console(message) -> str:
    location = message.location or {}
    where = location.get("url") or ""
    if where:
        where = f" ({where}:{location.get('lineNumber', '?')})"
    return f"{message.text}{where}"


@pytest.fixture(scope="module")
def page(browser_context, comfy_host, frontend_log: FrontendLog):
    """The ComfyUI UI of the test server, ready: window.app with its graph, canvas and extensions."""
    page = browser_context.new_page()
    page.on("request", lambda r: frontend_log.requested.append(r.url))
    page.on(
        "console", lambda m: m.type == "error" and frontend_log.console_errors.append(_describe_console(m))
    )
    page.on(
        "console",
        lambda m: m.type == "warning" and frontend_log.console_warnings.append(_describe_console(m)),
    )
    page.on("pageerror", lambda err: frontend_log.page_errors.append(f"{err}\n{getattr(err, 'stack', '')}"))
    page.on(
        "requestfailed", lambda r: frontend_log.failed_requests.append(f"{r.method} {r.url}: {r.failure}")
    )
    page.on(
        "response",
        lambda r: (
            r.status >= 400
            and frontend_log.failed_requests.append(f"{r.request.method} {r.url}: HTTP {r.status}")
        ),
    )
    start = time.monotonic()
    page.goto(comfy_host.url + "/", wait_until="domcontentloaded")
    try:
        page.wait_for_function(APP_READY, timeout=READY_TIMEOUT_MS)
    except Exception as err:
        problems = "\n".join(frontend_log.all()[-20:])
        pytest.fail(
            f"the ComfyUI frontend was not ready in {READY_TIMEOUT_MS / 1000:.0f} s: {err}\n{problems}"
        )
    print(f"\nComfyUI frontend ready in {time.monotonic() - start:.1f} s", file=sys.stderr)
    try:
        yield page
    finally:
        page.close()


@pytest.fixture(scope="module")
def screenshot_dir() -> Path:
    return Path(os.environ.get("RALU_SCREENSHOT_DIR") or "/tmp")
