"""End to end in a real headless browser: label by key and by polygon, reload, the labels are still there.

Needs Chromium and its driver (Debian: ``apt-get install chromium chromium-driver``) and Selenium; skipped
with the reason otherwise. Set ``GLACIERMAP_LABELLER_SCREENSHOT=docs/img/labeller.png`` to save a screenshot.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("flask", reason="the labelling tool needs Flask (pip install 'glaciermap[label]')")
pytest.importorskip("selenium", reason="the browser test needs Selenium (pip install 'glaciermap[test]')")

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait
from werkzeug.serving import make_server

from glaciermap.labelling.server import create_app
from tests.data.labelling import make_world

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()),
        reason="no headless browser: install Chromium and its driver (apt-get install chromium chromium-driver)",
    ),
]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    world = make_world(tmp_path / "world")
    labels = tmp_path / "labels.csv"
    app = create_app(world["image"], world["index"], labels, world["predictions"])
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/", labels
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1100,700"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver: Any, condition: Any, timeout: float = 30) -> Any:
    return WebDriverWait(driver, timeout).until(condition)


def _load(driver: Any, url: str) -> None:
    driver.get(url)
    _wait(driver, lambda d: d.execute_script("return document.body.dataset.ready") == "1")


def _click(driver: Any, canvas: Any, x: float, y: float) -> None:
    """Click at quick-look pixel ``(x, y)`` (Selenium offsets count from the element's centre)."""
    w, h = canvas.size["width"], canvas.size["height"]
    ActionChains(driver).move_to_element_with_offset(canvas, int(x - w / 2), int(y - h / 2)).click().perform()


def _status_version(driver: Any, version: int) -> None:
    _wait(driver, lambda d: f"version {version}," in d.find_element(By.ID, "status").text)


def test_label_by_key_and_polygon_survive_reload(served: tuple[str, Path], browser: Any) -> None:
    url, labels = served
    _load(browser, url)
    canvas = browser.find_element(By.ID, "map")
    assert (canvas.size["width"], canvas.size["height"]) == (576, 160)
    # key: select tile 13 (row 1, col 1: quick-look x 48-96, y 40-80), press 8 (chaos)
    _click(browser, canvas, 72, 60)
    _wait(browser, lambda d: d.find_element(By.ID, "tile-id").text == "13")
    ActionChains(browser).send_keys("8").perform()
    _status_version(browser, 1)
    # arrow right steps to tile 14; press 2 (shear)
    ActionChains(browser).send_keys("\ue014").perform()  # ArrowRight
    _wait(browser, lambda d: d.find_element(By.ID, "tile-id").text == "14")
    ActionChains(browser).send_keys("2").perform()
    _status_version(browser, 2)
    # polygon around the centres of rows 2-3, columns 8-10, labelled with class 5 from the picker
    Select(browser.find_element(By.ID, "class-picker")).select_by_value("5")
    browser.find_element(By.ID, "polygon").click()
    for x, y in ((390, 85), (530, 85), (530, 155), (390, 155)):
        _click(browser, canvas, x, y)
    browser.find_element(By.ID, "polygon").click()  # "finish polygon"
    _status_version(browser, 3)
    expected = {13: "chaos", 14: "shear", **dict.fromkeys((32, 33, 34, 44, 45, 46), "subordinate_shear")}
    table = pd.read_csv(labels)
    assert dict(zip(table["tile_id"], table["label"])) == expected
    # reload: the page shows the labels from the table
    _load(browser, url)
    shown = browser.execute_script("return state.labels")
    assert {int(k): v[0] for k, v in shown.items()} == {
        13: 8,
        14: 2,
        **dict.fromkeys((32, 33, 34, 44, 45, 46), 5),
    }
    assert "version 3," in browser.find_element(By.ID, "status").text
    canvas = browser.find_element(By.ID, "map")
    _click(browser, canvas, 72, 60)
    _wait(browser, lambda d: "label: Chaos" in d.find_element(By.ID, "tile-info").text)
    # undo (Ctrl+Z) removes the polygon's labels from the table
    ActionChains(browser).key_down("\ue009").send_keys("z").key_up("\ue009").perform()
    _wait(browser, lambda d: len(pd.read_csv(labels)) == 2)
    shot = os.environ.get("GLACIERMAP_LABELLER_SCREENSHOT")
    if shot:
        browser.save_screenshot(shot)


def test_screenshot_example(tmp_path: Path) -> None:
    """``examples/labeller_screenshot.py`` (which makes docs/img/labeller.png) shows the page."""
    import runpy

    from PIL import Image

    script = Path(__file__).resolve().parents[2] / "examples" / "labeller_screenshot.py"
    out = tmp_path / "shot.png"
    runpy.run_path(str(script))["main"]([str(out), "--tiles", "2", "22", "--tile-size", "20", "24"])
    with Image.open(out) as img:
        rgb = np.asarray(img.convert("RGB"))
    assert rgb.shape[1] == 1400 and rgb.shape[0] > 500
    header = rgb[5, 5]
    np.testing.assert_array_equal(header, [0x20, 0x39, 0x4F])  # the page's header bar was drawn
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 100  # the quick-look and tile, not a blank page
