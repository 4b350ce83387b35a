"""``glaciermap label``: serves the page on 127.0.0.1 until stopped; refuses a non-local host."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("flask", reason="the labelling tool needs Flask (pip install 'glaciermap[label]')")

import werkzeug.serving

from glaciermap import cli
from glaciermap.synthetic.crevasses import generate_crevasse_world


def test_label_serves_on_localhost_and_saves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    world = generate_crevasse_world(tmp_path / "w", tiles=(2, 22), tile_size=(20, 24))
    servers: list[Any] = []
    real = werkzeug.serving.make_server

    def recording(*args: Any, **kwargs: Any) -> Any:
        servers.append(real(*args, **kwargs))
        return servers[-1]

    monkeypatch.setattr(werkzeug.serving, "make_server", recording)
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", opened.append)
    result: dict[str, Any] = {}

    def client() -> None:
        deadline = time.monotonic() + 60
        while not servers and time.monotonic() < deadline:
            time.sleep(0.05)
        host, port = servers[0].server_address[:2]
        result["host"] = host
        base = f"http://127.0.0.1:{port}"
        req = urllib.request.Request(
            base + "/api/labels",
            data=json.dumps({"tiles": [2], "label": 9}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            result["labels"] = json.loads(resp.read())["labels"]
        servers[0].shutdown()

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    status = cli.main(
        ["label", "--image", str(world / "pan.tif"), "--index", str(world / "index.gpkg"),
         "--labels", str(tmp_path / "labels.csv")]
    )  # fmt: skip
    thread.join(timeout=60)
    assert status == 0
    assert result == {"host": "127.0.0.1", "labels": {"2": [9, 1.0]}}
    assert (tmp_path / "labels.csv").read_text() == "tile_id,label,confidence\n2,melt,1.0\n"
    out = capsys.readouterr().out
    assert opened == [out.split(" at ")[1].split()[0]] and opened[0].startswith("http://127.0.0.1:")
