"""``sam2 eval``: J&F of predicted video masks against ground truth (SA-V / DAVIS protocol)."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from sam2.cli import common

log = logging.getLogger(__name__)

DESCRIPTION = """\
Score predicted video object masks with region similarity J (IoU) and boundary accuracy F, as the
official SA-V evaluator (sav_dataset/sav_evaluator.py) does.

Layouts, detected per ground-truth video folder:
  DAVIS  <root>/<video>/<frame>.png           index PNGs, pixel value = object id (0 = background)
  SA-V   <root>/<video>/<obj_id>/<frame>.png  one binary PNG per object (value > 0 = object)
Predictions must have the same relative paths and image sizes; extra prediction files are ignored.
The first and last ground-truth frame of every video (SA-V: of every object) are not evaluated unless
--do-not-skip-first-and-last-frame. An object counts from the first frame where it appears in the
ground truth or the prediction; objects never present in the evaluated ground truth are not reported.
Global J and F are means over all (video, object) pairs; J&F = (J + F) / 2.

Output: a table on stdout (per object, per video, global) and a CSV file with columns
level,sequence,obj,J&F,J,F where level is "overall" (first row, sequence "Global score"), "video"
(mean over its objects, obj empty) or "object" (obj = 3-digit id, or SA-V object folder name); values
in percent with 4 decimals. Exit status: 0 on success, 1 when the data cannot be evaluated (missing
or unreadable PNG, size mismatch, mismatched folders with --strict), 2 for bad arguments.
"""


def _csv_path(value: str) -> Path:
    path = Path(value).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{value!r} is a folder; give a file path such as {value}/results.csv")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"folder {str(path.parent)!r} of {value!r} does not exist")
    return path


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``sam2 eval``."""
    p = subparsers.add_parser("eval", help="J&F evaluation of video masks (SA-V / DAVIS protocol)",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gt-root", "--gt_root", dest="gt_root", type=common.existing_dir, metavar="DIR", required=True,
                   help="ground-truth root, one sub-folder per video; a dataset root holding Annotations/ "
                        "is accepted, as in the official tool (DAVIS: Annotations/480p/ is used)")
    p.add_argument("--pred-root", "--pred_root", dest="pred_root", type=common.existing_dir, metavar="DIR", required=True,
                   help="prediction root with the same structure")
    p.add_argument("--output-csv", "--output_csv", dest="output_csv", type=_csv_path, metavar="FILE", default=None,
                   help="CSV file to write (default: <pred-root>/results.csv, as the official tool); "
                        "written only when the evaluation succeeds")
    p.add_argument("--no-csv", dest="no_csv", action="store_true", help="do not write a CSV file")
    p.add_argument("-n", "--num-processes", "--num_processes", dest="num_processes", type=common.positive_int, metavar="N",
                   default=min(16, os.cpu_count() or 1),
                   help="worker processes, one video at a time each (default: min(16, CPU count))")
    p.add_argument("-s", "--strict", action="store_true",
                   help="fail unless both roots hold exactly the same video folders (default: evaluate "
                        "their intersection and warn about videos without prediction)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar and no table; only the global score line")
    p.add_argument("--do-not-skip-first-and-last-frame", "--do_not_skip_first_and_last_frame",
                   dest="do_not_skip_first_and_last_frame", action="store_true",
                   help="also evaluate the first and last ground-truth frames (not standard for "
                        "semi-supervised VOS)")
    p.set_defaults(func=run, _parser=p)
    return p


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the results and write the CSV; returns the exit code."""
    from sam2.eval import evaluate

    if args.no_csv and args.output_csv is not None:
        args._parser.error("argument --output-csv: not allowed with --no-csv")
    csv_path = None if args.no_csv else (args.output_csv or args.pred_root / "results.csv")
    try:
        result = evaluate(args.gt_root, args.pred_root, num_processes=args.num_processes, strict=args.strict,
                          skip_first_and_last=not args.do_not_skip_first_and_last_frame,
                          progress=not args.quiet)
    except (ValueError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 1
    if not args.quiet:
        print(result.table())
    else:
        print(result.summary())
    if csv_path is not None:
        result.write_csv(csv_path)
        log.info("results written to %s", csv_path)
        if not args.quiet:
            print(f"Results saved to {csv_path}")
    return 0
