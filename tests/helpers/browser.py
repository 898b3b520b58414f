"""A headless Chromium for the HTML reports' browser test and their README screenshot.

Debian's ``chromium`` and ``chromium-driver`` packages (``.ci/run`` installs them), driven by
Selenium through the local ``chromedriver`` only: nothing is downloaded (Selenium Manager is
never asked, since the driver's path is given). Chromium runs as root on a closed network,
so it gets ``--no-sandbox`` and every switch that stops it from calling home (it would
otherwise hang), and a fresh profile folder per session.

:func:`headless_chromium` never leaves a process behind: the driver quits in ``finally``, and
any process still running with the session's own profile folder on its command line after
:data:`EXIT_WAIT_S` is killed by its pid (only those: the profile folder is unique).
Every wait has a timeout, and a watchdog kills the session's processes after
:data:`SESSION_LIMIT_S` whatever happens, so a hung browser fails the caller instead of
hanging it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cpi_bench.harness_ext.core.files import atomic_write_bytes

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
DRIVER_NAMES = ("chromedriver", "chromium-driver")
PAGE_TIMEOUT_S = 30  # page load and script limits (seconds)
SESSION_LIMIT_S = 180  # a watchdog kills the whole session after this: nothing can hang
EXIT_WAIT_S = 10  # how long the browser's processes get to exit after quit()
CHROMIUM_SWITCHES = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--disable-default-apps",
    "--no-default-browser-check",
    "--mute-audio",
)


def find_browser() -> tuple[str, str] | None:
    """(chromium path, chromedriver path), or None when either is not installed."""
    chromium = next((shutil.which(n) for n in CHROMIUM_NAMES if shutil.which(n)), None)
    driver = next((shutil.which(n) for n in DRIVER_NAMES if shutil.which(n)), None)
    return (chromium, driver) if chromium and driver else None


def missing_reason() -> str | None:
    """Why no browser session can start here (for a test's skip message), or None."""
    if find_browser() is None:
        return (
            "chromium and chromedriver are not installed (apt-get install chromium "
            "chromium-driver; .ci/run does)"
        )
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


def _processes_with(marker: str) -> list[int]:
    """Pids of live (not zombie) processes whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="ignore")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def leftover_processes(marker: str, wait_s: float = EXIT_WAIT_S) -> list[int]:
    """Wait up to ``wait_s`` for the processes carrying ``marker`` to exit; the pids of those
    still there (empty when all exited)."""
    deadline = time.monotonic() + wait_s
    while True:
        pids = _processes_with(marker)
        if not pids or time.monotonic() >= deadline:
            return pids
        time.sleep(0.2)


def _kill(marker: str) -> list[int]:
    """SIGKILL every live process carrying ``marker`` (this session's own); their pids."""
    pids = _processes_with(marker)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return pids


def _options(chromium: str, profile: str, width: int, height: int) -> Any:
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for switch in (*CHROMIUM_SWITCHES, f"--user-data-dir={profile}"):
        options.add_argument(switch)
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return options


@contextlib.contextmanager
def headless_chromium(width: int = 1400, height: int = 900) -> Iterator[Any]:
    """A Selenium Chrome driver on a headless Chromium with a fresh profile; quits it and
    reaps every process of this session on the way out (see the module docstring).

    Raises RuntimeError when the browser or Selenium is missing, or when a process of the
    session outlived :data:`EXIT_WAIT_S` (it has then been killed)."""
    reason = missing_reason()
    if reason:
        raise RuntimeError(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = find_browser()  # type: ignore[misc]
    profile = tempfile.mkdtemp(prefix="cpi-chromium-")
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager go online
    driver = None
    watchdog = threading.Timer(SESSION_LIMIT_S, _kill, args=(profile,))
    watchdog.daemon = True
    watchdog.start()  # a hung browser dies, and the call waiting on it fails instead
    try:
        service = Service(driver_path, service_args=[f"--log-path={profile}/driver.log"])
        driver = webdriver.Chrome(
            service=service, options=_options(chromium, profile, width, height)
        )
        driver.set_page_load_timeout(PAGE_TIMEOUT_S)
        driver.set_script_timeout(PAGE_TIMEOUT_S)
        yield driver
    finally:
        watchdog.cancel()
        if driver is not None:
            with contextlib.suppress(Exception):
                driver.quit()
        stuck = leftover_processes(profile)
        _kill(profile)
        shutil.rmtree(profile, ignore_errors=True)
        if stuck:
            raise RuntimeError(f"chromium processes {stuck} outlived quit(); killed them")


def console_errors(driver: Any) -> list[str]:
    """The page's console messages at level SEVERE (errors, CSP violations, failed loads)."""
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def screenshot(html: Path, png: Path, width: int = 1400, height: int = 900) -> Path:
    """Load ``html`` in headless Chromium and save the whole page (not only the window) as a
    PNG at ``png`` (atomically), ``width`` CSS pixels wide."""
    with headless_chromium(width, height) as driver:
        driver.get(Path(html).resolve().as_uri())
        full = driver.execute_script(  # let wide tables show whole instead of scrolling
            "document.querySelectorAll('.wrap').forEach(function (w) {"
            " w.style.overflow = 'visible'; });"
            "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
        )
        metrics = {
            "width": max(width, int(full[0])),
            "height": max(200, int(full[1])),
            "deviceScaleFactor": 1,
            "mobile": False,
        }
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        atomic_write_bytes(png, driver.get_screenshot_as_png())
    return png
