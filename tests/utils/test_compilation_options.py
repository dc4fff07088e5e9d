"""``sam2.compilation`` without compiling a SAM 2 model: the request precedence, the wrappers that
``vos_optimized`` installs, the eager fallback and its warning, strict mode, the missing-compiler guard,
the config key and ``--compile``. Real dynamo (it fails while tracing, before inductor runs)."""

from __future__ import annotations

import argparse
import warnings

import pytest
import torch
from torch import nn

from sam2 import compilation as C
from sam2.build_sam import build_sam2, build_sam2_video_predictor
from sam2.cli import common
from sam2.config_yaml import ConfigError, apply_overrides, resolve_config
from sam2.sam2_video_predictor import SAM2VideoPredictor
from tests import reference as R

MICRO21 = "sam2.1_hiera_micro"


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.setenv(C.ENV_VAR, "")  # restored after each test, whatever a test sets
    monkeypatch.delenv(C.ENV_VAR)


class DataDependent(nn.Module):
    """A branch on a tensor value: dynamo cannot trace it into one graph (``fullgraph`` fails)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(2.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x * self.scale
        return x - self.scale


class Holder(nn.Module):
    """Stands in for SAM2Base: one component attribute under an official name."""

    def __init__(self) -> None:
        super().__init__()
        self.sam_mask_decoder = DataDependent()


def test_request_precedence(monkeypatch) -> None:
    assert C.resolve_request() is None
    assert C.resolve_request(vos_optimized=True, device="cuda") == C.CompileOptions()
    assert C.resolve_request(compile_image_encoder=True, device="cuda").components == ("image_encoder",)
    # the implicit requests compile on CUDA only; an explicit one compiles anywhere
    assert C.resolve_request(vos_optimized=True, device="cpu") is None
    assert C.resolve_request(compile_image_encoder=True, device=torch.device("cpu")) is None
    assert C.resolve_request(True, device="cpu") == C.CompileOptions()
    assert C.resolve_request(True) == C.CompileOptions()
    assert C.resolve_request("strict").strict
    assert C.resolve_request(False, vos_optimized=True, device="cuda") is None  # explicit off wins
    monkeypatch.setenv(C.ENV_VAR, "1")
    assert C.resolve_request() == C.CompileOptions()
    assert C.resolve_request(vos_optimized=True, device="cpu") == C.CompileOptions()
    monkeypatch.setenv(C.ENV_VAR, "0")
    assert C.resolve_request(vos_optimized=True, device="cuda") is None
    assert C.resolve_request(True) == C.CompileOptions()  # the argument wins over the environment
    monkeypatch.setenv(C.ENV_VAR, "fast")
    with pytest.raises(ValueError, match="environment variable SAM2_COMPILE must be 1, 0 or strict"):
        C.resolve_request()
    with pytest.raises(ValueError, match="compile must be"):
        C.resolve_request("maybe")
    with pytest.raises(ValueError, match=r"components: unknown \['trunk'\]"):
        C.CompileOptions(components=("trunk",))


def test_compile_wraps_every_component_and_keeps_the_model(tmp_path) -> None:
    ckpt = R.write_checkpoint(tmp_path / "micro.pt", MICRO21)
    eager = build_sam2_video_predictor(R.config_for(MICRO21), ckpt, device="cpu", vos_optimized=True)
    assert C.compiled_components(eager.model) == []  # vos_optimized compiles on CUDA only
    predictor = build_sam2_video_predictor(R.config_for(MICRO21), ckpt, device="cpu", vos_optimized=True,
                                           compile=True)
    assert type(predictor) is SAM2VideoPredictor
    model = predictor.model
    on_cpu = [name for name in C.COMPONENTS if name != "sam_prompt_encoder"]  # see the next test
    assert C.compiled_components(model) == on_cpu
    assert model.compile_report.compiled == on_cpu and model.compile_report.mode is None
    for name in on_cpu:
        forward = getattr(model, name).forward
        assert isinstance(forward, C.CompiledForward) and not forward.clone_outputs
        assert hasattr(forward.compiled, "_torchdynamo_orig_callable"), f"{name} is not a dynamo callable"
        assert forward.eager.__self__ is getattr(model, name)
    assert list(model.state_dict()) == list(eager.model.state_dict())  # same keys: checkpoints still load
    assert C.compiled_components(eager.model) == []
    assert C.resolve_request(vos_optimized=False) is None
    with pytest.raises(ValueError, match="image_encoder is already compiled"):
        C.compile_model(model, C.CompileOptions())


def test_default_components_leave_the_prompt_encoder_eager_on_cpu() -> None:
    assert C.default_components("cuda") == tuple(C.COMPONENTS)  # as the official VOS predictor
    assert C.default_components("cpu") == ("image_encoder", "memory_encoder", "memory_attention",
                                           "sam_mask_decoder")
    assert not C.COMPONENTS["sam_prompt_encoder"].fullgraph  # branches on which prompts are given


def test_prompt_encoder_is_compiled_with_graph_breaks_when_named() -> None:
    holder = nn.Module()
    holder.sam_prompt_encoder = DataDependent()  # would fail as a whole graph (see the fallback tests)
    report = C.compile_model(holder, C.CompileOptions(components=("sam_prompt_encoder",), backend="eager"))
    x = torch.ones(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning: the branch is a graph break, not a failure
        assert torch.equal(holder.sam_prompt_encoder(x), x * 2)
        assert torch.equal(holder.sam_prompt_encoder(-x), -x - 2)
    assert report.fallbacks == {} and C.compiled_components(holder) == ["sam_prompt_encoder"]


def test_compile_false_overrides_vos_optimized(tmp_path) -> None:
    ckpt = R.write_checkpoint(tmp_path / "micro.pt", MICRO21)
    predictor = build_sam2_video_predictor(R.config_for(MICRO21), ckpt, device="cpu", vos_optimized=True,
                                           compile=False)
    assert C.compiled_components(predictor.model) == []


def test_config_key_compiles_the_image_encoder_only() -> None:
    resolved = resolve_config(R.config_for(MICRO21))
    assert resolved.compile_image_encoder is False
    assert apply_overrides(resolved, ["++model.compile_image_encoder=true"]).compile_image_encoder is True
    with pytest.raises(ConfigError, match="compile_image_encoder=.yes.. must be true or false, got 'yes'"):
        apply_overrides(resolved, ["++model.compile_image_encoder='yes'"])
    net = build_sam2(R.config_for(MICRO21), device="cpu", hydra_overrides_extra=["++model.compile_image_encoder=true"])
    assert C.compiled_components(net) == []  # on CUDA only (resolve_request above); the CPU runs eagerly


def test_failed_compilation_warns_once_and_runs_eagerly() -> None:
    holder = Holder()
    report = C.compile_model(holder, C.CompileOptions(components=("sam_mask_decoder",)))
    x = torch.ones(3)
    with pytest.warns(RuntimeWarning, match="torch.compile of sam_mask_decoder failed; running it eagerly"):
        out = holder.sam_mask_decoder(x)
    assert torch.equal(out, x * 2)
    assert "sam_mask_decoder" in report.fallbacks and C.compiled_components(holder) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning
        assert torch.equal(holder.sam_mask_decoder(-x), -x - 2)


def test_bad_input_error_is_the_eager_error_and_keeps_compilation() -> None:
    holder = Holder()
    report = C.compile_model(holder, C.CompileOptions(components=("sam_mask_decoder",)))
    with pytest.raises(AttributeError, match="'str' object has no attribute 'sum'"):
        holder.sam_mask_decoder("not a tensor")
    assert report.fallbacks == {} and C.compiled_components(holder) == ["sam_mask_decoder"]


def test_strict_compilation_failure_raises() -> None:
    holder = Holder()
    C.compile_model(holder, C.CompileOptions(components=("sam_mask_decoder",), strict=True))
    with pytest.raises(C.CompileError, match="torch.compile of sam_mask_decoder failed"):
        holder.sam_mask_decoder(torch.ones(3))


def test_missing_cpp_compiler(monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CXX", raising=False)
    assert "no C++ compiler" in C.cpu_compiler_problem()
    holder = Holder()
    with pytest.warns(RuntimeWarning, match="compilation requested but no C\\+\\+ compiler"):
        report = C.compile_model(holder, C.CompileOptions(components=("sam_mask_decoder",)))
    assert report.compiled == [] and report.skipped_reason and C.compiled_components(holder) == []
    with pytest.raises(C.CompileError, match="cannot compile on the CPU: no C\\+\\+ compiler"):
        C.compile_model(holder, C.CompileOptions(components=("sam_mask_decoder",), strict=True))


def test_compilation_never_turns_on_autocast() -> None:
    holder = Holder()
    holder.sam_mask_decoder = nn.Linear(4, 4)
    C.compile_model(holder, C.CompileOptions(components=("sam_mask_decoder",), strict=True))
    out = holder.sam_mask_decoder(torch.ones(2, 4))
    assert out.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
    assert C.compiled_components(holder) == ["sam_mask_decoder"]


def test_cli_compile_flag_sets_the_environment(monkeypatch) -> None:
    parser = argparse.ArgumentParser()
    common.add_model_arguments(parser)
    assert parser.parse_args([]).compile is None
    assert C.resolve_request() is None
    assert parser.parse_args(["--compile"]).compile is True
    assert C.resolve_request() == C.CompileOptions()
    monkeypatch.setenv(C.ENV_VAR, "strict")  # an explicit environment value is kept
    parser.parse_args(["--compile"])
    assert C.resolve_request().strict


def test_bad_compile_value_is_refused_before_loading(tmp_path) -> None:
    with pytest.raises(ValueError, match="compile must be 1, 0 or strict"):
        build_sam2(R.config_for(MICRO21), tmp_path / "missing.pt", device="cpu", compile="fast")
