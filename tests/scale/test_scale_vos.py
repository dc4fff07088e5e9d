"""``sam2 vos --ray`` on a real local Ray runtime: the mask folders of ``sam2 vos``, a corrupt video
reported while the others are written, remote-style (fsspec) output."""

from __future__ import annotations

import json

import pytest

from sam2.cli.main import main
from tests.scale.conftest import MICRO, requires_fixtures, tree, video_dataset

pytestmark = [requires_fixtures, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def vos_args(root, out: str, ckpt: str, *extra: str) -> list[str]:
    return ["vos", "--base_video_dir", str(root / "videos"), "--input_mask_dir", str(root / "masks"),
            "--output_mask_dir", out, "--sam2_cfg", MICRO, "--sam2_checkpoint", ckpt, "--device", "cpu", "-q",
            *extra]


def test_same_masks_as_single_process_and_corrupt_video_reported(tmp_path, ray_session, micro_ckpt, caplog):
    root = video_dataset(tmp_path, ["bedroom", "room2"], corrupt="broken")
    (root / "list.txt").write_text("bedroom\nroom2\n")  # sam2 vos stops at the corrupt video
    assert main(vos_args(root, str(root / "single"), micro_ckpt, "--video_list_file", str(root / "list.txt"))) == 0

    out = root / "ray"
    assert main(vos_args(root, f"local://{out}", micro_ckpt, "--ray")) == 1
    single, scaled = tree(root / "single"), tree(out)
    assert sorted(scaled) == [f"{v}/{t:05d}.png" for v in ("bedroom", "room2") for t in range(3)]
    assert scaled == single  # byte for byte
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert [f["item"] for f in failures] == ["broken"] and "00001" in failures[0]["reason"]
    assert "1 video(s) failed" in caplog.text
    assert sorted(p.name for p in out.iterdir()) == [".sam2-scale", "bedroom", "failures.jsonl", "room2"]

    # the corrupt frame replaced: a re-run does that video only, and the failures file goes
    (root / "videos" / "broken" / "00001.jpg").write_bytes((root / "videos" / "room2" / "00001.jpg").read_bytes())
    kept = (out / "bedroom" / "00000.png").stat().st_mtime_ns
    assert main(vos_args(root, str(out), micro_ckpt, "--ray")) == 0
    assert sorted(tree(out)) == sorted([f"{v}/{t:05d}.png" for v in ("bedroom", "broken", "room2") for t in range(3)])
    assert tree(out)["broken/00002.png"] == single["room2/00002.png"]  # same frames, same masks
    assert (out / "bedroom" / "00000.png").stat().st_mtime_ns == kept and not (out / "failures.jsonl").exists()
