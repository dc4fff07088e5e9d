"""Entry point of the ``sam2`` command: one sub-command per module of this package.

Each sub-command module defines ``add_parser(subparsers)`` which registers its parser and sets
``func`` (called with the parsed namespace, returns an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

SUBCOMMANDS = ("image", "auto", "video", "track", "eval", "vos", "train", "demo", "export", "selfcheck")

EXAMPLES = """\
examples:
  sam2 image photo.jpg --point 500,375 -o out/
  sam2 auto photos/ --points-per-side 32 -o masks/
  sam2 video clip.mp4 --prompt 0:1:point=210,350 --prompt 0:2:box=300,0,500,400 --format mp4 -o tracked.mp4
  sam2 selfcheck
image, auto and video take --model NAME or --checkpoint FILE [--config CONFIG], and --device.
"sam2 COMMAND --help" describes a command, its outputs and its options.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sam2",
        description="Segment Anything 2 / 2.1 (sam2-kit): segment images and videos from the command line.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"sam2.cli.{name}")
        except ModuleNotFoundError as exc:  # a sub-command not built yet
            if exc.name != f"sam2.cli.{name}":
                raise
            continue
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
