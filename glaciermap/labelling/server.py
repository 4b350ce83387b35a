"""The labelling tool's web server: a Flask app serving the page and a small JSON API.

:func:`create_app` builds the app for one scene (pan raster, split-image index, optional predictions) and one
label table (:class:`~glaciermap.labelling.store.LabelStore`). Endpoints (all JSON unless noted):

* ``GET /`` and ``/static/...``: the page (plain HTML, CSS and JavaScript shipped with the package).
* ``GET /api/scene``: quick-look URL and size, tiles (``id``, ``rect`` in quick-look pixels, grid ``row``
  and ``col``), classes (``id``, ``name``, ``colour``), labels, predictions and the table's version.
* ``GET /api/quicklook.png``, ``GET /api/tile/<id>.png``: the quick-look and a full-resolution 8-bit tile.
* ``GET /api/tile/<id>/vario``: the four directional vario curves of a tile.
* ``POST /api/labels``: ``{"tiles": [...], "label": id | null}`` or ``{"polygon": [[x, y], ...],
  "label": id | null}`` (quick-look pixels; every tile whose centre is inside).
* ``POST /api/undo``; ``POST /api/accept``: ``{"tile": id}`` or ``{"threshold": t}`` (every prediction with
  confidence above ``t``); ``POST /api/classes``: ``{"name": ...}``.
* ``POST /api/export/folder|equal|confident``: ``{"out": "relative/folder", "threshold": t, "equal": bool}``;
  the folder must lie inside the label table's folder (absolute paths, ``..`` and symlinks that leave it are
  refused with 400).

Every label change is saved to the table at once (the store's locked, atomic re-read-merge-write). Errors
in a request answer ``400`` with ``{"error": "one line"}``. No shell is ever called. Requests must be JSON
(``Content-Type: application/json``, which a foreign web page cannot send without a CORS pre-flight this
server never grants) and carry a local ``Host`` header.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from glaciermap.errors import GlaciermapError, InputError
from glaciermap.labelling.scene import Scene
from glaciermap.labelling.store import LabelStore

if TYPE_CHECKING:
    from flask import Flask

LOCAL_HOSTS: tuple[str, ...] = ("127.0.0.1", "localhost")
"""Hosts served by default (and the ``Host`` headers answered)."""

EXPORTS = ("folder", "equal", "confident")
"""The export kinds of ``POST /api/export/<kind>``."""


def safe_subfolder(base: str | os.PathLike[str], relative: Any) -> Path:
    """Resolve a user-given folder name inside ``base``, refusing anything that leaves it.

    Args:
        base: The allowed root (the label table's folder).
        relative: A relative path such as ``"exports/run1"``.

    Returns:
        The resolved folder (not created).

    Raises:
        InputError: For a non-string or empty value, an absolute path, a ``..`` part, or a path that
            resolves (through symlinks) outside ``base``.
    """
    if not isinstance(relative, str) or not relative.strip():
        raise InputError("out: expected a folder name relative to the label table's folder")
    parts = PurePosixPath(relative.replace("\\", "/"))
    if parts.is_absolute() or Path(relative).is_absolute() or ".." in parts.parts or ":" in relative:
        raise InputError(f"out {relative!r}: expected a relative folder without '..' (no absolute path)")
    root = Path(base).resolve()
    target = (root / Path(*parts.parts)).resolve()
    if target != root and not target.is_relative_to(root):
        raise InputError(f"out {relative!r}: leaves the label table's folder (through a symlink)")
    return target


def _flask() -> Any:
    try:
        import flask
    except ImportError:  # pragma: no cover - depends on the installation
        raise InputError(
            "glaciermap label needs Flask: pip install 'glaciermap[label]' (expected the label extra)"
        ) from None
    return flask


class LabellingService:
    """The state behind the API: the scene and the label store (a lock serialises raster reads).

    Args:
        scene: The scene to label.
        store: The label table.
    """

    def __init__(self, scene: Scene, store: LabelStore) -> None:
        self.scene = scene
        self.store = store
        self.read_lock = threading.Lock()

    def classes(self) -> list[dict[str, Any]]:
        """Classes with id, name, display name and colour (added classes take the next ``tab20`` colours)."""
        from glaciermap.datasets.crevasse_classes import TAB20

        out = [
            {"id": int(m), "name": m.name.lower(), "display": m.display_name, "colour": m.colour}
            for m in self.store.scheme
        ]
        n = len(out)
        for i, name in enumerate(self.store.extra_classes):
            colour = TAB20[(2 * i + 1) % len(TAB20)] if n + i < 40 else "#888888"
            out.append({"id": n + i, "name": name, "display": name, "colour": colour})
        return out

    def labels(self) -> dict[str, Any]:
        """Labels (``{tile id: [class, confidence]}``) and the table's version."""
        return {
            "labels": {str(t): [c, conf] for t, (c, conf) in sorted(self.store.labels.items())},
            "version": self.store.version,
        }

    def scene_json(self) -> dict[str, Any]:
        """The content of ``GET /api/scene``."""
        self.store.refresh()
        preds = self.scene.predictions
        predictions = (
            {}
            if preds is None
            else {
                str(t): [int(c), float(p)]
                for t, c, p in zip(preds["tile_id"], preds["label"], preds["confidence"])
            }
        )
        h, w = self.scene.shape
        s = self.scene.scale
        return {
            "image": self.scene.image.name,
            "quicklook": {
                "url": "/api/quicklook.png",
                "width": round(w * s),
                "height": round(h * s),
                "scale": s,
            },
            "tiles": self.scene.footprints(),
            "classes": self.classes(),
            "predictions": predictions,
            **self.labels(),
        }

    def set_labels(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /api/labels`` (module docstring)."""
        label = body.get("label")
        if label is not None and not isinstance(label, int):
            raise InputError(f"label {label!r}: expected a class id or null")
        if "polygon" in body:
            tiles = self.scene.tiles_in_polygon(body["polygon"])
        else:
            given = body.get("tiles")
            if not isinstance(given, list) or not all(isinstance(t, int) for t in given):
                raise InputError("tiles: expected a list of tile ids")
            tiles = [int(t) for t in given]
            for t in tiles:
                self.scene.position(t)
        changed = self.store.set_labels(tiles, label)
        return {"tiles": tiles, "changed": changed, **self.labels()}

    def accept(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /api/accept``: the predicted class of one tile, or of every tile above a confidence."""
        preds = self.scene.predictions
        if preds is None:
            raise InputError("no predictions loaded (start with --predictions PRED.gpkg)")
        if "tile" in body:
            chosen = preds[preds["tile_id"] == body["tile"]]
            if chosen.empty:
                raise InputError(f"tile {body['tile']!r}: has no prediction")
        else:
            threshold = body.get("threshold")
            if not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
                raise InputError(f"threshold {threshold!r}: expected a number in [0, 1]")
            chosen = preds[preds["confidence"] > threshold]
        entries = {int(t): (int(c), 1.0) for t, c in zip(chosen["tile_id"], chosen["label"])}
        changed = self.store.set_entries(entries) if entries else 0
        return {"tiles": sorted(entries), "changed": changed, **self.labels()}

    def export(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /api/export/<kind>``: the library's exporters, into a folder beside the label table."""
        from glaciermap.datasets.crevasse_labels import (
            confident_predictions,
            equal_dataset,
            export_image_folder,
            write_label_table,
        )

        if kind not in EXPORTS:
            raise InputError(f"export {kind!r}: expected one of {', '.join(EXPORTS)}")
        out = safe_subfolder(self.store.path.parent, body.get("out"))
        if kind == "confident":
            if self.scene.predictions is None:
                raise InputError("no predictions loaded (start with --predictions PRED.gpkg)")
            threshold = body.get("threshold", 0.9)
            if not isinstance(threshold, (int, float)):
                raise InputError(f"threshold {threshold!r}: expected a number in [0, 1)")
            table = confident_predictions(self.scene.predictions, float(threshold), bool(body.get("equal")))
        else:
            table = self.store.table()
            table = table[table["label"] < len(self.store.scheme)]  # added classes have no scheme folder
            if kind == "equal":
                table = equal_dataset(table)
        with self.read_lock:
            n = export_image_folder(self.scene.dataset, table, out, self.store.scheme)
        write_label_table(table, out / "labels.csv", self.store.scheme)
        return {"out": str(out), "images": n, "rows": len(table)}


def _json_body(flask: Any) -> dict[str, Any]:
    body = flask.request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InputError("request body: expected a JSON object")
    return body


def create_app(
    image: str | os.PathLike[str],
    index: str | os.PathLike[str],
    labels: str | os.PathLike[str],
    predictions: str | os.PathLike[str] | None = None,
    trusted_hosts: Sequence[str] | None = LOCAL_HOSTS,
) -> Flask:
    """Build the labelling app (module docstring).

    Args:
        image: Pan raster.
        index: Its split-image index.
        labels: Label table CSV (created, with its folder, at the first change).
        predictions: Optional predictions (``tile_id``, ``label``, ``confidence``; GeoPackage or CSV).
        trusted_hosts: ``Host`` header names the app answers (others get 400, which stops DNS-rebinding
            pages from reaching a local server); ``None`` accepts any (``--allow-remote``).

    Returns:
        The Flask app; ``app.config["SERVICE"]`` holds the :class:`LabellingService`.

    Raises:
        InputError: For missing or mismatched inputs, or a label table that cannot be read.
    """
    flask = _flask()
    labels_path = Path(labels)
    if labels_path.is_dir():
        raise InputError(f"{labels_path}: is a folder (expected a label table CSV path)")
    scene = Scene(Path(image), Path(index), None if predictions is None else Path(predictions))
    service = LabellingService(scene, LabelStore(labels_path))
    static = resources.files("glaciermap.labelling") / "static"
    app = flask.Flask(__name__, static_folder=str(static), static_url_path="/static")
    app.config["SERVICE"] = service
    if trusted_hosts is not None:
        app.config["TRUSTED_HOSTS"] = list(trusted_hosts)
    _routes(app, flask, service)
    return app


def _routes(app: Any, flask: Any, service: LabellingService) -> None:
    """Register the page, error handling and read-only routes (module docstring)."""
    jsonify, send = flask.jsonify, flask.Response

    @app.errorhandler(GlaciermapError)
    def _bad(err: GlaciermapError) -> Any:
        return jsonify({"error": str(err)}), 400

    @app.after_request
    def _headers(resp: Any) -> Any:
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.get("/")
    def _index() -> Any:
        return app.send_static_file("index.html")

    @app.get("/api/scene")
    def _scene() -> Any:
        return jsonify(service.scene_json())

    @app.get("/api/quicklook.png")
    def _quicklook() -> Any:
        with service.read_lock:
            return send(service.scene.quicklook_png(), mimetype="image/png")

    @app.get("/api/tile/<int:tile_id>.png")
    def _tile(tile_id: int) -> Any:
        with service.read_lock:
            return send(service.scene.tile_png(tile_id), mimetype="image/png")

    @app.get("/api/tile/<int:tile_id>/vario")
    def _vario(tile_id: int) -> Any:
        with service.read_lock:
            return jsonify(service.scene.vario(tile_id))

    @app.get("/api/labels")
    def _get_labels() -> Any:
        service.store.refresh()
        return jsonify(service.labels())

    _change_routes(app, flask, service)


def _change_routes(app: Any, flask: Any, service: LabellingService) -> None:
    """Register the routes that change the label table or write exports (module docstring)."""
    jsonify = flask.jsonify

    @app.post("/api/labels")
    def _labels() -> Any:
        return jsonify(service.set_labels(_json_body(flask)))

    @app.post("/api/undo")
    def _undo() -> Any:
        return jsonify({"changed": service.store.undo(), **service.labels()})

    @app.post("/api/accept")
    def _accept() -> Any:
        return jsonify(service.accept(_json_body(flask)))

    @app.post("/api/classes")
    def _classes() -> Any:
        name = _json_body(flask).get("name")
        if not isinstance(name, str):
            raise InputError("name: expected a class name")
        return jsonify({"id": service.store.add_class(name), "classes": service.classes()})

    @app.post("/api/export/<kind>")
    def _export(kind: str) -> Any:
        return jsonify(service.export(kind, _json_body(flask)))
