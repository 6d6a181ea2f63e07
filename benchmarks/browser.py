"""A live explorer on loopback and a headless Chromium to drive it (browser tests and
``bench_web``). Uses Debian's ``chromium`` and ``chromium-driver`` (``apt-get install
chromium chromium-driver``) through selenium; nothing is downloaded."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER = ("/usr/bin/chromedriver",)
#: Where screenshots and timings go (git-ignored).
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "web"


def _first(paths: tuple[str, ...], name: str) -> str | None:
    for p in paths:
        if Path(p).exists():
            return p
    return shutil.which(name)


def missing() -> str | None:
    """Why the browser cannot run here (None when it can)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -c constraints.txt -e '.[test]')"
    if _first(CHROMIUM, "chromium") is None:
        return "no chromium: apt-get install chromium chromium-driver"
    if _first(CHROMEDRIVER, "chromedriver") is None:
        return "no chromedriver: apt-get install chromium-driver"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def live_server(app) -> Iterator[str]:
    """``app`` served by uvicorn on 127.0.0.1 in a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the explorer did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator:
    """A headless Chromium (selenium WebDriver) that records the console."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = _first(CHROMIUM, "chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--enable-unsafe-swiftshader",
                "--use-angle=swiftshader", "--no-first-run", "--disable-extensions"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts,
                              service=Service(_first(CHROMEDRIVER, "chromedriver")))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver) -> list[str]:
    """Console messages of level SEVERE since the last call (errors, uncaught exceptions,
    failed resource loads)."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def wait_for(driver, script: str, timeout: float = 60.0, poll: float = 0.05):
    """Poll ``return <script>`` until it is truthy; its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script("return " + script)
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout} s for {script}")
        time.sleep(poll)


def browser_cpu_seconds(driver) -> float:
    """CPU time (user + system) used so far by the browser's processes (chromedriver's
    children: browser, renderer, GPU/SwiftShader): a figure the machine's load does not
    inflate the way it inflates wall time."""
    import psutil

    total = 0.0
    for p in psutil.Process(driver.service.process.pid).children(recursive=True):
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return total


def skymap_render(driver, base: str, projection: str = "aitoff", timeout: float = 120) -> dict:
    """Load the sky map and wait until its points are drawn: ``window.skymapReady``
    (``n``, ``total_ms`` since navigation start, ``fetch_ms`` waiting for the data after the
    script started, ``draw_ms`` from the data to drawn) plus ``browser_cpu_s``, the CPU time
    the browser's processes used meanwhile."""
    cpu0 = browser_cpu_seconds(driver)
    driver.get(f"{base}/skymap?projection={projection}")
    ready = wait_for(driver, "window.skymapReady", timeout=timeout)
    if "error" in ready:
        raise RuntimeError(f"the sky map failed: {ready['error']}")
    ready["browser_cpu_s"] = browser_cpu_seconds(driver) - cpu0
    return ready


#: Where the sky map's plot frame is on screen (viewport CSS pixels) and which plane window
#: it shows: enough to place any source on screen without asking the app.
SKY_FRAME = """
const view = Object.values(window.Bokeh.index)[0], f = view.frame;
const rect = view.canvas_view.el.getBoundingClientRect();
return {left: rect.left + f.bbox.x, top: rect.top + f.bbox.y, width: f.bbox.width,
        height: f.bbox.height, x0: f.x_range.start, x1: f.x_range.end,
        y0: f.y_range.start, y1: f.y_range.end};
"""


def to_screen(frame: dict, x, y):
    """Plane (x, y) to viewport CSS pixels for the frame ``SKY_FRAME`` returned."""
    sx = frame["left"] + (x - frame["x0"]) / (frame["x1"] - frame["x0"]) * frame["width"]
    sy = frame["top"] + (frame["y1"] - y) / (frame["y1"] - frame["y0"]) * frame["height"]
    return sx, sy


def move_to(driver, x: float, y: float) -> None:
    """Move the mouse to viewport position (x, y)."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(int(round(x)), int(round(y)))
    actions.perform()


def click_at(driver, x: float, y: float) -> None:
    """A real mouse click at viewport position (x, y)."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(int(round(x)), int(round(y)))
    actions.pointer_action.click()
    actions.perform()


def synthetic_sky(n: int, seed: int = 0):
    """``n`` sources spread over the sky with the aggregated classes' shares (no database):
    a ``sky_points`` callable for ``create_app``'s sky map."""
    import numpy as np

    from web.plots import AGG_LABELS

    rng = np.random.default_rng(seed)
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    cls = rng.choice(np.array(AGG_LABELS, dtype=object), n, p=[0.4, 0.1, 0.15, 0.25, 0.1])
    points = {"source_id": np.arange(1, n + 1, dtype="int64"), "ra": ra, "dec": dec, "cls": cls}
    return lambda: points
