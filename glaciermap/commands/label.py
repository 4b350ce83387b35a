"""``glaciermap label``: label split-images in the browser (:mod:`glaciermap.labelling`).

Serves the labelling page on ``127.0.0.1`` (a free port by default) until Ctrl-C. Every label change is
saved to ``--labels`` at once.
"""

from __future__ import annotations

import argparse

HELP = "label split-images in the browser (quick-look, tiles, vario curves); saves every change to --labels"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the options of ``glaciermap label``.

    Args:
        parser: The sub-command's parser.
    """
    parser.add_argument("--image", required=True, metavar="PAN.tif", help="single-band pan raster")
    parser.add_argument("--index", required=True, metavar="SPLITS.gpkg", help="its split-image index")
    parser.add_argument(
        "--predictions", default=None, metavar="PRED.gpkg", help="predictions (tile_id,label,confidence)"
    )
    parser.add_argument("--labels", required=True, metavar="LABELS.csv", help="label table (created)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default 0: a free one)")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser")
    parser.add_argument(
        "--allow-remote", action="store_true", help="allow a --host other than localhost (no authentication!)"
    )


def main(args: argparse.Namespace) -> int:
    """Build the app and serve it until interrupted.

    Args:
        args: Parsed arguments.

    Returns:
        Exit status 0.

    Raises:
        ConfigError: For a non-local host without ``--allow-remote`` or a port outside 0 ... 65535.
        InputError: For missing or mismatched inputs.
    """
    import webbrowser

    from werkzeug.serving import make_server

    from glaciermap.errors import ConfigError
    from glaciermap.labelling.server import LOCAL_HOSTS, create_app

    if args.host not in LOCAL_HOSTS and not args.allow_remote:
        raise ConfigError(
            f"--host {args.host}: serves the labels to the network; expected 127.0.0.1 (or add --allow-remote)"
        )
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: expected 0 ... 65535")
    trusted = None if args.allow_remote else LOCAL_HOSTS
    app = create_app(args.image, args.index, args.labels, args.predictions, trusted_hosts=trusted)
    server = make_server(args.host, args.port, app, threaded=True)
    url = f"http://{args.host}:{server.server_port}/"
    print(f"labelling {args.image} -> {args.labels} at {url} (Ctrl-C to stop)", flush=True)
    if not args.no_browser:
        webbrowser.open(url)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
