"""The gallery of bundled sample media (``sam2/demo/samples/``).

A sample is any image or video file of the folder; its id is the file's stem, its kind comes from its
extension (these files ship with the package, so their names are trusted; they are still decoded like an
upload when opened). An empty or missing folder gives an empty gallery.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sam2.utils.video_decode import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"


@dataclass(frozen=True)
class Sample:
    id: str
    name: str
    kind: str  # "image" | "video"
    path: Path

    def as_json(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "kind": self.kind}


def list_samples(folder: Path | None = SAMPLES_DIR) -> list[Sample]:
    """The samples in ``folder`` sorted by id (videos and images; other files are ignored)."""
    if folder is None or not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.iterdir()):
        suffix = path.suffix.lower()
        if not path.is_file() or path.name.startswith("."):
            continue
        kind = "video" if suffix in VIDEO_EXTENSIONS else "image" if suffix in IMAGE_EXTENSIONS else None
        if kind is not None:
            found.append(Sample(path.stem, path.stem.replace("_", " ").capitalize(), kind, path))
    return found
