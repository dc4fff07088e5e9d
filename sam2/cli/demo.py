"""``sam2 demo``: the web demo on this machine (FastAPI app served by uvicorn)."""

from __future__ import annotations

import argparse
import errno
import logging
import socket
import sys
import threading
import webbrowser

from sam2.cli import common

log = logging.getLogger(__name__)

GRACEFUL_S = 3  # on Ctrl+C, open streams (a running propagation) get this long before they are cut

DESCRIPTION = f"""\
Start the web demo and print its address: open an image or a video (upload, or a bundled sample), click
objects (shift-click for background, drag for a box), track them through the video with live results,
correct any frame and re-track, run "segment everything" on an image, and export DAVIS / SA-V PNGs,
COCO RLE JSON or an overlay MP4. The API is documented at http://HOST:PORT/docs.

The server listens on 127.0.0.1 (this machine only) by default. --host 0.0.0.0 shares it with every
machine that can reach this one: there is no login, so do that only on a network you trust.
One model serves every session; requests that arrive while it works wait in a queue.
Needs the demo extra: pip install 'sam2-kit[demo]'.

{common.MODEL_HELP}"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``sam2 demo``."""
    p = subparsers.add_parser("demo", help="web demo in the browser (local server)",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 = every network interface)")
    p.add_argument("--port", type=_port, default=8000, help="TCP port (default 8000)")
    p.add_argument("--open", action="store_true", help="open the page in the default web browser")
    limits = p.add_argument_group("limits")
    limits.add_argument("--max-objects", type=common.positive_int, default=32, metavar="N",
                        help="objects per session (default 32)")
    limits.add_argument("--max-upload-mb", type=common.positive_float, default=200.0, metavar="MB",
                        help="size of an uploaded file (default 200)")
    limits.add_argument("--max-frames", type=common.positive_int, default=2000, metavar="N",
                        help="frames of an uploaded video (default 2000)")
    limits.add_argument("--session-idle", type=common.positive_int, default=1800, metavar="SECONDS",
                        help="close sessions unused for this long (default 1800)")
    limits.add_argument("--max-sessions", type=common.positive_int, default=32, metavar="N",
                        help="sessions open at once (default 32)")
    common.add_model_arguments(p)
    p.set_defaults(func=run, _parser=p)
    return p


def _port(value: str) -> int:
    number = common.positive_int(value)
    if number > 65535:
        raise argparse.ArgumentTypeError(f"must be at most 65535, got {number}")
    return number



def _check_port(parser: argparse.ArgumentParser, host: str, port: int) -> None:
    """Usage error when the address cannot be bound (port taken, unknown host), before loading the model."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        parser.error(f"argument --host: cannot resolve {host!r}: {exc.strerror}")
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(addr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                parser.error(f"argument --port: port {port} on {host} is already in use; choose another "
                             "with --port")
            parser.error(f"argument --host: cannot listen on {host}:{port}: {exc.strerror}")


def url_of(host: str, port: int) -> str:
    """The address to print: a wildcard host is shown as 127.0.0.1 (reachable from this machine)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def run(args: argparse.Namespace) -> int:
    parser = args._parser
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ModuleNotFoundError as exc:
        log.error("the demo needs %s: pip install 'sam2-kit[demo]'", exc.name)
        return 1
    _check_port(parser, args.host, args.port)
    spec = common.model_spec(parser, args.model, args.config, args.checkpoint)
    device = common.resolve_device(parser, args.device)

    from sam2.demo import create_app
    from sam2.demo.sessions import DemoLimits

    try:
        predictor = common.build_model(spec, device, video=True)
    except common.ModelLoadError as exc:
        log.error("%s", exc)
        return 1
    name = args.model or (args.checkpoint.stem if args.checkpoint else None) or (spec.hub_id or "").split("/")[-1]
    limits = DemoLimits(max_objects=args.max_objects, max_upload_mb=args.max_upload_mb,
                        max_frames=args.max_frames, session_idle_s=args.session_idle,
                        max_sessions=args.max_sessions)
    app = create_app(predictor, model_name=name, limits=limits)
    url = url_of(args.host, args.port)
    if args.host in ("0.0.0.0", "::"):
        print(f"WARNING: listening on every network interface ({args.host}): anyone who can reach this machine "
              "can use the demo and upload files; there is no login.", file=sys.stderr)
    print(f"sam2 demo ({name} on {device}): {url}  (API: {url}docs; Ctrl+C to stop)", flush=True)
    if args.open:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    uvicorn.run(app, host=args.host, port=args.port, timeout_graceful_shutdown=GRACEFUL_S,
                log_level="info" if getattr(args, "verbose", False) else "warning")
    return 0
