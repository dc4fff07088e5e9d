"""Opt-in ``torch.compile`` of the SAM 2 submodules, without changing their classes or weights.

Each compiled submodule keeps its type, parameters and state-dict keys; only its ``forward`` is
replaced on the instance by a :class:`CompiledForward`, which calls the ``torch.compile``-d forward
and falls back to the eager one when compilation fails (or raises, with ``strict``).

What turns compilation on, first match wins:

1. ``compile=`` of the builders (``True``, ``False``, ``"strict"`` or a :class:`CompileOptions`);
2. the environment variable ``SAM2_COMPILE`` (``1``, ``0`` or ``strict``);
3. ``vos_optimized=True`` of ``build_sam2_video_predictor`` (every component, as the official does);
4. ``compile_image_encoder: true`` in a config (the image encoder only).

The two implicit requests (3 and 4) compile on CUDA only: on a CPU inductor spends many minutes of gcc
on the first calls for no measured gain (see the README), so there they run eagerly with one log line;
``compile=True`` or ``SAM2_COMPILE=1`` compiles on the CPU too.

On CUDA the official settings are used (mode ``max-autotune``, every component); on CPU inductor's default
mode, which needs a C++ compiler, and every component but the prompt encoder (see :data:`COMPONENTS`).
Compilation never changes dtypes: no autocast is turned on here.
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

ENV_VAR = "SAM2_COMPILE"


@dataclass(frozen=True)
class ComponentPlan:
    """How one submodule of ``SAM2Base`` is compiled: ``dynamic`` shapes (``None``: static until a
    shape changes, then dynamic), whole graph (``fullgraph``), and whether a CPU compiles it unless the
    components are named (``on_cpu``)."""

    name: str
    dynamic: bool | None
    fullgraph: bool = True
    on_cpu: bool = True


# The official VOS settings (whole graphs; static shapes but for memory attention, whose memory grows per
# frame), except for the prompt path. The mask decoder may turn dynamic: the number of prompt points varies
# between calls, and static shapes would compile once per count (the official compiles it static). The
# prompt encoder branches on which prompts are given (points, boxes, masks: up to 8 graphs, the recompile
# limit), so it is not a whole graph (past the limit it runs eagerly instead of failing); it is a few
# element-wise ops, so a CPU, where every graph costs a minute of gcc, leaves it eager by default.
COMPONENTS: dict[str, ComponentPlan] = {
    "image_encoder": ComponentPlan("image_encoder", dynamic=False),
    "memory_encoder": ComponentPlan("memory_encoder", dynamic=False),
    "memory_attention": ComponentPlan("memory_attention", dynamic=True),
    "sam_prompt_encoder": ComponentPlan("sam_prompt_encoder", dynamic=None, fullgraph=False, on_cpu=False),
    "sam_mask_decoder": ComponentPlan("sam_mask_decoder", dynamic=None),
}


def default_components(device: torch.device | str) -> tuple[str, ...]:
    """The components compiled when none are named: all on CUDA, those with ``on_cpu`` elsewhere."""
    on_cuda = torch.device(device).type == "cuda"
    return tuple(name for name, plan in COMPONENTS.items() if on_cuda or plan.on_cpu)


@dataclass(frozen=True)
class CompileOptions:
    """What to compile and how.

    ``components``: names from :data:`COMPONENTS`; ``None`` picks :func:`default_components` for the
    model's device. ``mode``: ``torch.compile`` mode; ``None`` picks ``max-autotune`` on CUDA and inductor's default
    elsewhere. ``strict``: a failed compilation raises :class:`CompileError` instead of warning once and
    running that component eagerly. ``backend``: the ``torch.compile`` backend (``aot_eager`` traces
    without generating code: a quick way to tell a tracing problem from a code-generation one).
    """

    components: tuple[str, ...] | None = None
    mode: str | None = None
    strict: bool = False
    backend: str = "inductor"

    def __post_init__(self) -> None:
        unknown = [c for c in self.components or () if c not in COMPONENTS]
        if unknown:
            raise ValueError(f"CompileOptions.components: unknown {unknown}; known: {list(COMPONENTS)}")


@dataclass
class CompileReport:
    """Result of :func:`compile_model`: what was compiled, with which mode, and what fell back."""

    compiled: list[str] = field(default_factory=list)
    mode: str | None = None
    skipped_reason: str | None = None
    fallbacks: dict[str, str] = field(default_factory=dict)


class CompileError(RuntimeError):
    """Compilation was required (``strict``) but failed."""


def _parse_flag(value: Any, where: str) -> bool | str | CompileOptions | None:
    if value is None or isinstance(value, (bool, CompileOptions)):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    if text == "strict":
        return "strict"
    raise ValueError(f"{where} must be 1, 0 or strict (or True/False/'strict'/CompileOptions), got {value!r}")


def resolve_request(compile: Any = None, *, vos_optimized: bool = False, compile_image_encoder: bool = False,
                    device: str | torch.device | None = None) -> CompileOptions | None:
    """The :class:`CompileOptions` asked for (see the module docstring for the precedence), or ``None``.

    ``device``: where the model runs; the implicit requests (``vos_optimized``, ``compile_image_encoder``)
    compile only when it is CUDA (``None``: CUDA if available)."""
    request = _parse_flag(compile, "compile")
    if request is None:
        request = _parse_flag(os.environ.get(ENV_VAR), f"environment variable {ENV_VAR}")
    if isinstance(request, CompileOptions):
        return request
    if request is False:
        return None
    if request is not None:
        return CompileOptions(strict=request == "strict")
    if not (vos_optimized or compile_image_encoder):
        return None
    on_cuda = torch.device(device).type == "cuda" if device is not None else torch.cuda.is_available()
    if not on_cuda:
        which = "vos_optimized=True" if vos_optimized else "compile_image_encoder"
        log.info("%s compiles on CUDA only; running eagerly on %s (compile=True or %s=1 compiles here too)",
                 which, device or "cpu", ENV_VAR)
        return None
    if vos_optimized:
        return CompileOptions()
    return CompileOptions(components=("image_encoder",))


def cpu_compiler_problem() -> str | None:
    """Why inductor cannot build CPU kernels here (no C++ compiler on the PATH), or ``None``."""
    import torch._inductor.config as inductor_config

    cxx = inductor_config.cpp.cxx[1] if isinstance(inductor_config.cpp.cxx, tuple) else inductor_config.cpp.cxx
    candidates = [os.environ.get("CXX"), cxx, "g++", "clang++"]
    if any(c and shutil.which(c) for c in candidates):
        return None
    return "no C++ compiler (g++ or clang++) on the PATH; inductor needs one for CPU kernels"


def _clone_tensors(out: Any) -> Any:
    """Copies of every tensor in ``out``: CUDA-graph outputs are overwritten by the next replay."""
    from torch.utils._pytree import tree_map

    return tree_map(lambda x: x.clone() if isinstance(x, torch.Tensor) else x, out)


class CompiledForward:
    """Replacement ``forward`` of one submodule: the compiled forward, the eager one after a failure.

    A call that fails compiled is rerun eagerly; if the eager call fails as well the error is the
    input's and propagates unchanged (the compiled path stays on), else compilation is given up for
    this component with one warning (or :class:`CompileError` with ``strict``).
    """

    def __init__(self, name: str, eager: Callable, compiled: Callable, report: CompileReport,
                 strict: bool, clone_outputs: bool) -> None:
        self.name = name
        self.eager = eager
        self.compiled = compiled
        self.report = report
        self.strict = strict
        self.clone_outputs = clone_outputs

    @property
    def active(self) -> bool:
        """Whether calls still go through the compiled forward."""
        return self.name not in self.report.fallbacks

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.active:
            return self.eager(*args, **kwargs)
        try:
            out = self.compiled(*args, **kwargs)
        except Exception as exc:  # dynamo, inductor, the C++ compiler or triton: many types
            out = self.eager(*args, **kwargs)  # raises the input's own error if the input is bad
            self._give_up(exc)
            return out
        return _clone_tensors(out) if self.clone_outputs else out

    def _give_up(self, exc: Exception) -> None:
        reason = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:300]}"
        if self.strict:
            raise CompileError(f"torch.compile of {self.name} failed ({reason})") from exc
        first = not self.report.fallbacks
        self.report.fallbacks[self.name] = reason
        if first:
            warnings.warn(f"torch.compile of {self.name} failed; running it eagerly (same results, no "
                          f"speed-up). Cause: {reason}. Set {ENV_VAR}=strict to make this an error.",
                          RuntimeWarning, stacklevel=3)
        else:
            log.warning("torch.compile of %s failed too; running it eagerly (%s)", self.name, reason)


def _default_mode(device: torch.device) -> str | None:
    return "max-autotune" if device.type == "cuda" else None


def compile_model(model: nn.Module, options: CompileOptions) -> CompileReport:
    """Compile ``options.components`` of ``model`` (a ``SAM2Base``) in place; returns what was done.

    Compilation itself happens lazily, on each component's first call (and again for new shapes).
    """
    device = next(model.parameters()).device
    mode = options.mode if options.mode is not None else _default_mode(device)
    report = CompileReport(mode=mode)
    if device.type == "cpu" and options.backend == "inductor":
        problem = cpu_compiler_problem()
        if problem is not None:
            if options.strict:
                raise CompileError(f"cannot compile on the CPU: {problem}")
            warnings.warn(f"compilation requested but {problem}; running eagerly", RuntimeWarning, stacklevel=2)
            report.skipped_reason = problem
            return report
    clone_outputs = device.type == "cuda" and mode in ("max-autotune", "reduce-overhead")
    for name in options.components or default_components(device):
        module = getattr(model, name)
        if isinstance(module.forward, CompiledForward):
            raise ValueError(f"{name} is already compiled; compile a model once")
        plan = COMPONENTS[name]
        eager = module.forward
        compiled = torch.compile(eager, backend=options.backend, mode=mode, fullgraph=plan.fullgraph,
                                 dynamic=plan.dynamic)
        module.forward = CompiledForward(name, eager, compiled, report, options.strict, clone_outputs)
        report.compiled.append(name)
    log.info("torch.compile (mode %s) of %s; the first call of each compiles (slow)",
             mode or "default", ", ".join(report.compiled))
    return report


def compiled_components(model: nn.Module) -> list[str]:
    """Names of the submodules whose calls currently go through a compiled forward."""
    forwards = {name: getattr(getattr(model, name, None), "forward", None) for name in COMPONENTS}
    return [name for name, fwd in forwards.items() if isinstance(fwd, CompiledForward) and fwd.active]
