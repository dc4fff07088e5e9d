"""The ``--ray`` options shared by ``sam2 auto`` and ``sam2 vos``, their checks, and the end-of-job report.
Imports nothing from Ray: the commands load this module even when Ray is not installed."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sam2.cli.arg_types import non_negative_float, positive_float, positive_int
from sam2.scale.ledger import FAILURES_FILE, InputError, JobSummary, SettingsMismatch
from sam2.scale.paths import Location, is_url

log = logging.getLogger(__name__)

RAY_HELP = """\
Scale-out (--ray, needs the [scale] extra): the items (images / videos) are spread over Ray workers that
each hold one model; the outputs are those of the single-process command. Without --ray-address (or
RAY_ADDRESS) Ray starts on this machine with workers x cpus-per-worker CPUs. Inputs and outputs may be
fsspec URLs (file://, s3://, gs://, ...). The job's bookkeeping lives in .sam2-scale/ inside the output
folder: a re-run skips the items already done (--overwrite redoes them) and refuses an output made with
other settings. An item that fails (unreadable image or video) is listed in failures.jsonl in the output
folder ({"item", "reason"} per line) and the job goes on; the exit status is then 1, with every other
item written. One progress bar counts the items of the whole job.
"""

def path_or_url(kind: Any) -> Any:
    """Argument type: a URL stays a string (``--ray`` reads it with fsspec), anything else is ``kind(text)``."""
    def parse(text: str) -> Any:
        return text if is_url(text) else kind(text)

    parse.__name__ = getattr(kind, "__name__", "path")
    return parse


def refuse_urls(parser: argparse.ArgumentParser, *pairs: tuple[Any, str]) -> None:
    """Usage error for a URL (value, flag) given to the single-process command."""
    for value, flag in pairs:
        if isinstance(value, str):
            parser.error(f"argument {flag}: a URL ({value!r}) needs --ray")


_RAY_OPTIONS = ("ray_address", "workers", "cpus_per_worker", "gpus_per_worker", "batch_size")


def add_ray_arguments(parser: argparse.ArgumentParser, overwrite: bool = True) -> None:
    """``--ray`` and its options (``--overwrite`` too, unless the command already has one)."""
    group = parser.add_argument_group("scale-out on Ray (needs --ray)")
    group.add_argument("--ray", action="store_true", help="run on Ray workers (see the description above)")
    group.add_argument("--ray-address", metavar="ADDRESS", default=None,
                       help="join this Ray cluster (host:port, ray://host:10001, auto); default RAY_ADDRESS, "
                            "else a local runtime")
    group.add_argument("--workers", type=positive_int, metavar="N", default=None,
                       help="model-holding workers (default 1)")
    group.add_argument("--cpus-per-worker", type=positive_float, metavar="X", default=None,
                       help="CPUs per worker, also its torch threads (default 1)")
    group.add_argument("--gpus-per-worker", type=non_negative_float, metavar="X", default=None,
                       help="GPUs per worker, fractions allowed (default 0)")
    group.add_argument("--batch-size", type=positive_int, metavar="N", default=None,
                       help="items per Ray task (default 1)")
    if overwrite:
        group.add_argument("--overwrite", action="store_true",
                           help="redo the items that an earlier --ray run into OUT finished")


def scale_options(parser: argparse.ArgumentParser, args: argparse.Namespace):  # -> ScaleOptions | None
    """The :class:`~sam2.scale.ray_runtime.ScaleOptions` of ``--ray``; None without it (a usage
    error when a Ray option is given without ``--ray``)."""
    if not args.ray:
        given = [name for name in _RAY_OPTIONS if getattr(args, name) is not None]
        if given:
            parser.error(f"argument --{given[0].replace('_', '-')}: only with --ray")
        return None
    from sam2.scale.ray_runtime import ScaleOptions

    if args.device and args.device.startswith("cuda") and not args.gpus_per_worker:
        parser.error("argument --device: cuda workers need --gpus-per-worker (e.g. 1)")
    return ScaleOptions(workers=args.workers or 1, cpus_per_worker=args.cpus_per_worker or 1.0,
                        gpus_per_worker=args.gpus_per_worker or 0.0, batch_size=args.batch_size or 1,
                        address=args.ray_address, overwrite=args.overwrite, quiet=args.quiet)


@dataclass
class Outcome:
    """What :func:`guarded` saw: the job's summary, or the error that stopped it."""

    summary: JobSummary | None = None
    error: str | None = None


@contextmanager
def guarded(parser: argparse.ArgumentParser, input_flag: str, output_flag: str) -> Iterator[Outcome]:
    """Turn a job's errors into the CLI's conventions: bad input / output / cluster address -> usage
    error (exit 2, raised before any work); anything else that stops the job -> ``Outcome.error``."""
    from sam2.scale.ray_runtime import RayUnavailable

    outcome = Outcome()
    try:
        yield outcome
    except InputError as exc:
        parser.error(f"argument {input_flag}: {exc}")
    except SettingsMismatch as exc:
        parser.error(f"argument {output_flag}: {exc}")
    except RayUnavailable as exc:
        parser.error(f"argument {exc.flag}: {exc}")
    except Exception as exc:  # Ray wraps worker errors in many types; one readable line instead
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        outcome.error = f"{type(exc).__name__}: {first}"
        log.error("the job stopped: %s (items finished so far are kept; a re-run resumes)", outcome.error)


def report(outcome: Outcome, output: Location, unit: str, quiet: bool) -> int:
    """Print the summary line; the exit code (0 all done, 1 some failed or the job stopped)."""
    summary = outcome.summary
    if summary is None:
        return 1
    if summary.failures:
        log.error("%d %s(s) failed, listed in %s (e.g. %s: %s)", len(summary.failures), unit,
                  output.child(FAILURES_FILE), summary.failures[0].item, summary.failures[0].reason)
    if not quiet:
        skipped = f", {summary.skipped} done before" if summary.skipped else ""
        failed = f", {len(summary.failures)} failed" if summary.failures else ""
        print(f"{summary.processed} {unit}(s) processed{skipped}{failed} of {summary.total}: {output}",
              file=sys.stdout)
    return summary.exit_code
