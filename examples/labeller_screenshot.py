"""Screenshot of ``glaciermap label`` on the synthetic crevasse world (headless Chromium via Selenium).

Usage::

    python examples/labeller_screenshot.py OUT.png [--tiles 6 10] [--tile-size 201 268]

A world is generated into a temporary folder with predictions (the true class, confidence drawn at random),
a few tiles are labelled through the API, and the page is shown with the predictions and one tile
selected. The figure of ``docs/crevasses.md`` is made with
``python examples/labeller_screenshot.py docs/img/labeller.png``. Needs Chromium and its driver
(``apt-get install chromium chromium-driver``) and Selenium.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.serving import make_server

from glaciermap.labelling.server import create_app
from glaciermap.synthetic.crevasses import generate_crevasse_world


def screenshot(out: Path, tiles: tuple[int, int], tile_size: tuple[int, int], folder: Path) -> Path:
    """Generate the world in ``folder``, serve it, label a few tiles and save the page as ``out``."""
    world = generate_crevasse_world(folder / "world", seed=1, tiles=tiles, tile_size=tile_size)
    truth = pd.read_csv(world / "labels.csv")
    rng = np.random.default_rng(0)
    truth.assign(confidence=rng.uniform(0.3, 1.0, len(truth)).round(3)).to_csv(
        folder / "pred.csv", index=False
    )
    app = create_app(world / "pan.tif", world / "index.gpkg", folder / "labels.csv", folder / "pred.csv")
    client = app.test_client()
    scene = client.get("/api/scene").get_json()
    for tile in scene["tiles"][: len(scene["tiles"]) // 3]:
        client.post("/api/accept", json={"tile": tile["id"]})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    width, height = 1400, 760
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", f"--window-size={width},{height}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(f"http://127.0.0.1:{server.server_port}/")
        WebDriverWait(driver, 60).until(
            lambda d: d.execute_script("return document.body.dataset.ready") == "1"
        )
        driver.execute_script(
            "document.getElementById('show-predictions').click();"
            f"select({scene['tiles'][len(scene['tiles']) // 2]['id']});"
        )
        WebDriverWait(driver, 60).until(
            lambda d: d.execute_script("return document.getElementById('tile-image').complete")
        )
        driver.save_screenshot(str(out))
    finally:
        driver.quit()
        server.shutdown()
    return out


def main(argv: Sequence[str] | None = None) -> Path:
    """Parse the arguments and write the screenshot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--tiles", nargs=2, type=int, default=(6, 10))
    parser.add_argument("--tile-size", nargs=2, type=int, default=(201, 268))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        return screenshot(args.out, tuple(args.tiles), tuple(args.tile_size), Path(tmp))


if __name__ == "__main__":
    print(main())
