"""Run a workload of ``speed_workloads.py`` with our code or with the official ``sam2`` package.

Each side runs in its own fresh process: ours with this checkout's interpreter and the checkout on
``PYTHONPATH``; the official one with the interpreter of a separate virtual environment that has
``sam2==1.1.0`` installed (default ``/work/official/.venv``, or ``--official-python``), from a neutral
working directory and with ``PYTHONPATH`` cleared, so that only the installed official package can be
imported. Both read the same inputs from the same work directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().parent / "speed_workloads.py"
DEFAULT_OFFICIAL_PYTHON = Path("/work/official/.venv/bin/python")


class SideError(RuntimeError):
    """A workload process failed; the message names the side and ends with its stderr."""


@dataclass(frozen=True)
class Side:
    """Where one implementation's workloads run: ``name`` (``ours``/``official``), its interpreter and
    environment variables."""

    name: str
    python: Path
    env: dict[str, str]
    cwd: Path
    torchvision_shim: bool = False

    def run(self, workdir: Path, spec: dict, timeout_s: float | None = None) -> dict:
        """Run one workload spec; returns the worker's result dict."""
        spec_path = workdir / f"spec_{self.name}.json"
        spec_path.write_text(json.dumps(spec | {"torchvision_shim": self.torchvision_shim}))
        proc = subprocess.run([str(self.python), str(WORKER), str(workdir), str(spec_path)], cwd=self.cwd,
                              env=self.env, capture_output=True, text=True, timeout=timeout_s)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            raise SideError(f"{self.name} {spec['workload']} failed (exit {proc.returncode}):\n"
                            f"{proc.stderr[-3000:]}")
        return json.loads(lines[-1][len("RESULT "):])


def _base_env(threads: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SAM2_COMPILE")}
    env["OMP_NUM_THREADS"] = str(threads)
    env["PYTHONWARNINGS"] = "ignore"
    return env


def ours(threads: int, compile_: bool, checkout: Path = REPO, name: str = "ours") -> Side:
    """Our code: this interpreter, ``checkout`` (default this one) first on ``PYTHONPATH``; ``compile_``
    sets ``SAM2_COMPILE=1`` (every component through ``sam2.compilation``)."""
    env = _base_env(threads)
    env["PYTHONPATH"] = str(Path(checkout).resolve())
    if compile_:
        env["SAM2_COMPILE"] = "1"
    return Side(name, Path(sys.executable), env, Path(checkout).resolve())


PROBE = "import sam2, sam2.build_sam, sam2.automatic_mask_generator; print(sam2.__file__)"
SHIM_PROBE = f"import sys; sys.path.insert(0, {str(WORKER.parent)!r}); import torchvision_shim; " \
    "torchvision_shim.install(); " + PROBE


def needs_torchvision_shim(python: Path) -> bool:
    """True when the official venv's torchvision cannot load its compiled ops (``torchvision::nms does not
    exist``: a CUDA torchvision wheel beside the CPU torch) but imports with ``torchvision_shim``."""
    plain = subprocess.run([str(python), "-c", PROBE], cwd="/", env=_base_env(1), capture_output=True, text=True)
    if plain.returncode == 0 or "torchvision::nms" not in plain.stderr:
        return False
    shimmed = subprocess.run([str(python), "-c", SHIM_PROBE], cwd="/", env=_base_env(1), capture_output=True,
                             text=True)
    return shimmed.returncode == 0


def official_install_problem(python: Path) -> str | None:
    """Why the official environment cannot be used (``None`` when it can)."""
    if not python.exists():
        return f"no official interpreter at {python} (install sam2==1.1.0 in a venv, or pass --official-python)"
    log = python.parents[2] / "install.log"
    if log.exists() and "done 0" not in log.read_text(errors="replace"):
        return f"{log} does not say 'done 0': the official install has not finished or failed"
    code = SHIM_PROBE if needs_torchvision_shim(python) else PROBE
    probe = subprocess.run([str(python), "-c", code], cwd="/", env=_base_env(1), capture_output=True, text=True)
    if probe.returncode != 0:
        return f"{python} cannot import the official sam2: {probe.stderr.strip().splitlines()[-1:]}"
    if str(REPO) in probe.stdout:
        return f"{python} imports sam2 from this checkout, not the official package"
    return None


def official(threads: int, python: Path = DEFAULT_OFFICIAL_PYTHON) -> Side:
    """The official package in its own venv, started from ``/`` with no ``PYTHONPATH``."""
    return Side("official", python, _base_env(threads), Path("/"), needs_torchvision_shim(python))
