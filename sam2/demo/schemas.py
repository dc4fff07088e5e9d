"""Request and response bodies of the demo API (pydantic models; they document ``/docs``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator


class RLE(BaseModel):
    """A mask as COCO run-length encoding (pycocotools, column-major), at the frame's original size."""

    size: list[int] = Field(..., min_length=2, max_length=2, description="[height, width]")
    counts: str | list[int] = Field(..., description="compressed counts string (or uncompressed run lengths)")


class Limits(BaseModel):
    max_objects: int
    max_upload_mb: float
    max_frames: int
    session_idle_s: int
    max_sessions: int


class SampleInfo(BaseModel):
    id: str
    name: str
    kind: Literal["video", "image"]


class Info(BaseModel):
    model: str = Field(..., description="model name")
    device: str
    limits: Limits
    samples: list[SampleInfo]
    busy: bool = Field(..., description="the model is working (further requests wait in a queue)")
    queued: int = Field(..., description="requests waiting for the model")
    sessions: int = Field(..., description="open sessions")


class OpenSample(BaseModel):
    sample: str = Field(..., description="id of a bundled sample (see /api/info)")


class SessionInfo(BaseModel):
    session_id: str
    kind: Literal["video", "image"]
    name: str = Field(..., description="name used inside exported files")
    num_frames: int
    width: int
    height: int
    fps: float = Field(..., description="frames per second (1.0 for an image)")


class SessionState(SessionInfo):
    objects: list[int] = Field(..., description="ids of the objects that have prompts")


class ObjectMask(BaseModel):
    object_id: int
    rle: RLE
    score: float | None = Field(None, description="predicted quality (null for video predictions)")


class FrameMasks(BaseModel):
    frame: int
    masks: list[ObjectMask]


class PointsRequest(BaseModel):
    frame: int = Field(..., ge=0)
    object_id: int = Field(..., gt=0, description="positive id chosen by the client")
    points: list[list[float]] = Field(default_factory=list, description="[[x, y], ...] in original pixels")
    labels: list[int] = Field(default_factory=list, description="1 = on the object, 0 = background")
    box: list[float] | None = Field(None, description="[x0, y0, x1, y1] in original pixels")
    clear_old_points: bool = Field(True, description="replace this object's earlier clicks on this frame")

    @field_validator("points")
    @classmethod
    def _pairs(cls, v: list[list[float]]) -> list[list[float]]:
        if any(len(p) != 2 for p in v):
            raise ValueError("every point must be [x, y]")
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: list[int]) -> list[int]:
        if any(label not in (0, 1) for label in v):
            raise ValueError("labels must be 1 (object) or 0 (background)")
        return v

    @field_validator("box")
    @classmethod
    def _box(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and len(v) != 4:
            raise ValueError("box must be [x0, y0, x1, y1]")
        return v


class MaskRequest(BaseModel):
    frame: int = Field(..., ge=0)
    object_id: int = Field(..., gt=0)
    mask: RLE


class ClearFrameRequest(BaseModel):
    frame: int = Field(..., ge=0)
    object_id: int | None = Field(None, gt=0, description="null = every object")


class ObjectList(BaseModel):
    objects: list[int]


class Cancelled(BaseModel):
    cancelled: bool = Field(..., description="a propagation was running or queued and is being stopped")


class EverythingRequest(BaseModel):
    frame: int = Field(0, ge=0)
    points_per_side: int = Field(16, ge=1, le=64)
    pred_iou_thresh: float = Field(0.7, ge=0.0, le=1.0)
    stability_score_thresh: float = Field(0.9, ge=0.0, le=1.0)


class EverythingMask(BaseModel):
    rle: RLE
    area: int
    score: float = Field(..., description="predicted IoU")
    bbox: list[float] = Field(..., description="[x, y, w, h]")


class EverythingResult(BaseModel):
    frame: int
    masks: list[EverythingMask]


class Closed(BaseModel):
    closed: bool


class ErrorBody(BaseModel):
    detail: str = Field(..., description="what went wrong, for a person")
