"""``sam2 demo`` on the command line: help, argument errors, and a real server in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from sam2.cli.demo import url_of
from sam2.cli.selfcheck import MICRO_CONFIG
from tests.demo.demo_api_support import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def sam2(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sam2", *argv], cwd=REPO_ROOT, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def test_help_lists_the_options():
    out = sam2("demo", "--help")
    assert out.returncode == 0, out.stderr
    for option in ("--host", "--port", "--open", "--max-objects", "--max-upload-mb", "--max-frames",
                   "--session-idle", "--max-sessions", "--model", "--checkpoint", "--config", "--device"):
        assert option in out.stdout, option
    assert "127.0.0.1" in out.stdout and "0.0.0.0" in out.stdout


def test_bad_arguments_are_usage_errors(demo_checkpoint):
    model = ["--config", str(MICRO_CONFIG), "--checkpoint", str(demo_checkpoint), "--device", "cpu"]
    cases = [(["--port", "70000"], "--port: must be at most 65535"),
             (["--max-upload-mb", "0"], "--max-upload-mb: must be > 0"),
             (["--max-objects", "zero"], "--max-objects: 'zero' is not an integer"),
             (["--checkpoint", "/no/such.pt"], "'/no/such.pt' is not an existing file")]
    for argv, words in cases:
        out = sam2("demo", *argv)
        assert out.returncode == 2 and words in out.stderr, (argv, out.stderr)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = sam2("demo", *model, "--port", str(port))
    assert out.returncode == 2 and f"port {port} on 127.0.0.1 is already in use" in out.stderr


def test_url_shown_for_wildcard_hosts():
    assert url_of("127.0.0.1", 8000) == "http://127.0.0.1:8000/"
    assert url_of("0.0.0.0", 80) == "http://127.0.0.1:80/"
    assert url_of("::1", 9) == "http://[::1]:9/"


def test_server_starts_and_serves_the_api(demo_checkpoint, tmp_path):
    port = free_port()
    log = tmp_path / "server.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sam2", "demo", "--config", str(MICRO_CONFIG), "--checkpoint",
             str(demo_checkpoint), "--device", "cpu", "--host", "0.0.0.0", "--port", str(port),
             "--max-objects", "5", "--max-frames", "50"],
            cwd=REPO_ROOT, env=ENV, stdout=sink, stderr=subprocess.STDOUT)
        try:
            info = None
            deadline = time.monotonic() + 120
            while info is None and time.monotonic() < deadline:
                assert proc.poll() is None, log.read_text()
                try:
                    info = httpx.get(f"http://127.0.0.1:{port}/api/info", timeout=5).json()
                except httpx.TransportError:
                    time.sleep(0.3)
            assert info is not None, log.read_text()
            assert info["model"] == demo_checkpoint.stem and info["device"] == "cpu"
            assert info["limits"]["max_objects"] == 5 and info["limits"]["max_frames"] == 50
            assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
            opened = httpx.post(f"http://127.0.0.1:{port}/api/sessions", json={"sample": "still_shapes"}, timeout=60)
            assert opened.status_code == 201
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    text = log.read_text()
    assert f"http://127.0.0.1:{port}/" in text
    assert "WARNING: listening on every network interface (0.0.0.0)" in text
