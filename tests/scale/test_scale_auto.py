"""``sam2 auto --ray`` on a real local Ray runtime: same output as ``sam2 auto``, a corrupt image reported,
a killed worker retried, resume, fsspec URLs."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from sam2.cli.main import main
from tests.scale.conftest import AMG, MICRO, image_folder, requires_fixtures, tree

pytestmark = [requires_fixtures, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def model(ckpt: str) -> list[str]:
    return ["--config", MICRO, "--checkpoint", ckpt, "--device", "cpu", "-q"]


def test_same_output_as_single_process_and_corrupt_image_reported(tmp_path, ray_session, micro_ckpt, caplog):
    folder = image_folder(tmp_path, {"truck.jpg": "truck.jpg", "cars.jpg": "cars.jpg", "b.png": "truck_crop.jpg"})
    assert main(["auto", str(folder), "-o", str(tmp_path / "single"), *AMG, *model(micro_ckpt)]) == 0
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")  # sam2 auto would refuse it

    code = main(["auto", str(folder), "-o", str(tmp_path / "ray"), *AMG, *model(micro_ckpt),
                 "--ray", "--workers", "2"])
    assert code == 1  # one input failed, the others are written
    single, scaled = tree(tmp_path / "single"), tree(tmp_path / "ray")
    assert sorted(scaled) == ["annotations.json", "overlays/b.png", "overlays/cars.png", "overlays/truck.png"]
    assert scaled == single  # byte for byte: annotations.json and every overlay
    assert json.loads(scaled["annotations.json"])["annotations"]  # and there are masks to compare
    lines = (tmp_path / "ray" / "failures.jsonl").read_text().splitlines()
    assert [json.loads(line)["item"] for line in lines] == ["broken.jpg"]
    assert "cannot read image" in json.loads(lines[0])["reason"] and "broken.jpg" in lines[0]
    assert "1 image(s) failed, listed in" in caplog.text


def _run_in_thread(argv: list[str]) -> tuple[threading.Thread, list[int]]:
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(main(argv)), daemon=True)
    thread.start()
    return thread, codes


def _worker_pids(out: Path) -> list[int]:
    """PIDs of the workers that started, earliest first."""
    folder = out / ".sam2-scale" / "workers"
    infos = [json.loads(p.read_text()) for p in folder.glob("*.json")] if folder.is_dir() else []
    return [info["pid"] for info in sorted(infos, key=lambda info: info["started"])]


def _done(out: Path) -> list[str]:
    folder = out / ".sam2-scale" / "done"
    return sorted(p.name for p in folder.glob("*.json")) if folder.is_dir() else []


def test_killed_worker_is_retried_then_resume_skips_done_images(tmp_path, ray_session, micro_ckpt, capsys):
    names = {f"img{k:02d}.jpg": ("truck.jpg" if k % 2 else "cars.jpg") for k in range(6)}
    folder = image_folder(tmp_path, names)
    out = tmp_path / "out"
    # one worker: the one killed is surely busy, and only its restart can finish the job
    argv = ["auto", str(folder), "-o", str(out), *AMG, *model(micro_ckpt), "--ray", "--workers", "1"]
    thread, codes = _run_in_thread(argv)
    deadline = time.monotonic() + 180
    while not _done(out) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _done(out) and len(_done(out)) < len(names), "the job should be running"
    victim = _worker_pids(out)[0]  # it has recorded an image and is busy with the next
    os.kill(victim, signal.SIGKILL)
    thread.join(timeout=300)
    assert codes == [0]
    assert _worker_pids(out)[0] == victim and len(_worker_pids(out)) == 2  # restarted once
    coco = json.loads((out / "annotations.json").read_text())
    assert [img["file_name"] for img in coco["images"]] == sorted(names)  # complete, each image once
    assert [a["id"] for a in coco["annotations"]] == list(range(1, len(coco["annotations"]) + 1))
    per_image = {}
    for ann in coco["annotations"]:
        per_image.setdefault(ann["image_id"], []).append({k: v for k, v in ann.items() if k not in ("id", "image_id")})
    by_source = {}
    for img in coco["images"]:  # copies of the same picture got the same masks: nothing doubled or lost
        by_source.setdefault(names[img["file_name"]], []).append(per_image[img["id"]])
    assert all(len(v) == 3 and all(x == v[0] for x in v) for v in by_source.values())
    assert sorted(p.name for p in (out / "overlays").iterdir()) == [n.replace(".jpg", ".png") for n in sorted(names)]
    assert not [p for p in out.rglob(".*") if ".partial-" in p.name or p.name.endswith(".tmp")]
    capsys.readouterr()

    # resume: everything is done -> no worker is needed, the same annotations are written again
    before = (out / "annotations.json").read_bytes()
    argv = [a for a in argv if a != "-q"]  # with the summary line
    assert main(argv[:-2]) == 0
    assert (out / "annotations.json").read_bytes() == before
    assert "0 image(s) processed, 6 done before of 6" in capsys.readouterr().out

    # an image whose record is missing (say the run stopped there) is the only one redone
    (out / ".sam2-scale" / "done" / "img03.jpg.json").unlink()
    (out / "overlays" / "img03.png").unlink()
    kept = (out / ".sam2-scale" / "done" / "img04.jpg.json").stat().st_mtime_ns
    assert main(argv) == 0
    assert "1 image(s) processed, 5 done before of 6" in capsys.readouterr().out
    assert (out / "annotations.json").read_bytes() == before and (out / "overlays" / "img03.png").is_file()
    assert (out / ".sam2-scale" / "done" / "img04.jpg.json").stat().st_mtime_ns == kept

    # other settings into the same output: refused before any work, unless --overwrite
    with pytest.raises(SystemExit) as info:
        main([*argv, "--points-per-side", "3"])
    assert info.value.code == 2 and "generator differ" in capsys.readouterr().err


@pytest.mark.parametrize("source_scheme,out_scheme", [("local", "file")])
def test_fsspec_urls(tmp_path, ray_session, micro_ckpt, source_scheme, out_scheme):
    """``local://`` is the local disk through fsspec's generic calls (the code path of s3:// and gs://:
    open, ls, put); ``file://`` takes the local shortcut (renames)."""
    folder = image_folder(tmp_path, {"truck.jpg": "truck.jpg", "cars.jpg": "cars.jpg"})
    assert main(["auto", str(folder), "-o", str(tmp_path / "single"), *AMG, *model(micro_ckpt)]) == 0
    url, out = f"{source_scheme}://{folder}", tmp_path / "out"
    assert main(["auto", url, "-o", f"{out_scheme}://{out}", *AMG, *model(micro_ckpt), "--ray"]) == 0
    single, scaled = tree(tmp_path / "single"), tree(out)
    assert sorted(scaled) == sorted(single)
    coco, ref = json.loads(scaled.pop("annotations.json")), json.loads(single.pop("annotations.json"))
    assert [img.pop("path") for img in coco["images"]] == [f"{url}/cars.jpg", f"{url}/truck.jpg"]
    [img.pop("path") for img in ref["images"]]
    assert coco == ref and scaled == single


@pytest.mark.parametrize("extra,named", [
    (["--ray", "--workers", "0"], "--workers"),
    (["--ray", "--batch-size", "-1"], "--batch-size"),
    (["--ray", "--cpus-per-worker", "0"], "--cpus-per-worker"),
    (["--workers", "2"], "--workers: only with --ray"),
    (["--overwrite"], "--overwrite: only with --ray"),
    (["--ray", "--device", "cuda"], "--gpus-per-worker"),
    (["--ray", "--ray-address", "127.0.0.1:9"], "cannot reach the Ray cluster at '127.0.0.1:9'"),
])
def test_bad_options_are_usage_errors_before_any_work(tmp_path, micro_ckpt, capsys, extra, named):
    folder = image_folder(tmp_path, {"truck.jpg": "truck.jpg"})
    start = time.monotonic()
    with pytest.raises(SystemExit) as info:
        main(["auto", str(folder), "-o", str(tmp_path / "out"), *AMG, *model(micro_ckpt), *extra])
    assert info.value.code == 2 and named in capsys.readouterr().err
    assert time.monotonic() - start < 15
    assert not (tmp_path / "out").exists()


def test_url_without_ray_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["auto", f"file://{tmp_path}", "-o", str(tmp_path / "out")])
    assert info.value.code == 2 and "needs --ray" in capsys.readouterr().err


def test_without_ray_installed_the_commands_load_and_ray_is_a_clear_error(tmp_path, micro_ckpt, capsys, monkeypatch):
    import subprocess
    import sys

    code = ("import sys; sys.modules['ray'] = None; import sam2.cli.auto, sam2.cli.vos, sam2.cli.main; "
            "assert not [m for m, mod in sys.modules.items() if m.split('.')[0] == 'ray' and mod is not None]")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
    monkeypatch.setitem(sys.modules, "ray", None)  # "import ray" now raises ImportError
    folder = image_folder(tmp_path, {"truck.jpg": "truck.jpg"})
    with pytest.raises(SystemExit) as info:
        main(["auto", str(folder), "-o", str(tmp_path / "out"), *AMG, *model(micro_ckpt), "--ray"])
    assert info.value.code == 2 and "argument --ray: needs Ray Data" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
