"""The released SAM 2 / SAM 2.1 models: name -> preset, official config name, Hub id, file name."""

from __future__ import annotations

from dataclasses import dataclass

SAM21_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"
SAM20_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/072824/"


@dataclass(frozen=True)
class Release:
    """One official checkpoint."""

    name: str  # e.g. "sam2.1_hiera_tiny" (the checkpoint file stem)
    preset: str  # e.g. "sam2.1_hiera_t" (key of sam2.config.PRESETS)
    hub_id: str  # e.g. "facebook/sam2.1-hiera-tiny"

    @property
    def filename(self) -> str:
        return f"{self.name}.pt"

    @property
    def config(self) -> str:
        """Official config name, e.g. ``configs/sam2.1/sam2.1_hiera_t.yaml``."""
        folder = "sam2.1" if self.preset.startswith("sam2.1") else "sam2"
        return f"configs/{folder}/{self.preset}.yaml"

    @property
    def url(self) -> str:
        return (SAM21_URL if self.preset.startswith("sam2.1") else SAM20_URL) + self.filename


_SIZES = {"t": ("tiny", "tiny"), "s": ("small", "small"), "b+": ("base_plus", "base-plus"),
          "l": ("large", "large")}

RELEASES: tuple[Release, ...] = tuple(
    Release(f"{prefix}_hiera_{file_size}", f"{prefix}_hiera_{size}", f"facebook/{prefix}-hiera-{hub_size}")
    for prefix in ("sam2", "sam2.1")
    for size, (file_size, hub_size) in _SIZES.items()
)

DEFAULT_MODEL = "sam2.1_hiera_tiny"

# Official mapping used by build_sam2_hf: Hub id -> (config name, checkpoint file name).
HF_MODEL_ID_TO_FILENAMES: dict[str, tuple[str, str]] = {r.hub_id: (r.config, r.filename) for r in RELEASES}


def find_release(name: str) -> Release:
    """Look a model up by release name, preset name, Hub id, config name or checkpoint file name."""
    key = name.strip()
    for r in RELEASES:
        # The bare file name covers the official legacy aliases (``sam2_hiera_l.yaml``).
        if key in (r.name, r.preset, r.hub_id, r.config, r.filename, r.config.split("/", 1)[1],
                   r.config.rsplit("/", 1)[1]):
            return r
    known = ", ".join(r.name for r in RELEASES)
    raise KeyError(f"unknown model {name!r}; known models: {known} (or their Hub ids such as "
                   f"'facebook/sam2.1-hiera-tiny')")
