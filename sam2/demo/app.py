"""The demo's FastAPI application: the HTTP API (documented at ``/docs``) and the page.

Routes stay thin: sessions, uploads, propagation and exports live in their own modules; model work is
queued on the one model thread and awaited, so the event loop always stays free to answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from sam2.demo import exports, propagation, schemas
from sam2.demo.errors import DemoError
from sam2.demo.samples import SAMPLES_DIR
from sam2.demo.service import DemoService, load_predictor
from sam2.demo.sessions import DemoLimits
from sam2.demo.uploads import safe_name, save_upload, too_large_message
from sam2.demo.worker import Job

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_JSON_BYTES = 32 * 1024 * 1024  # prompts and masks (COCO RLE) are far smaller
ERRORS = {code: {"model": schemas.ErrorBody} for code in (404, 409, 413, 415, 422)}
UPLOAD_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary", "description": "an image or a video (decoded to check)"}}}},
    "application/json": {"schema": schemas.OpenSample.model_json_schema()},
}}}


class BodyLimit:
    """ASGI middleware: 413 for a request whose declared body (other than a multipart upload, limited by
    its own route) is larger than ``max_bytes`` before anything reads it."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            length = headers.get(b"content-length", b"")
            multipart = headers.get(b"content-type", b"").startswith(b"multipart/")
            if not multipart and length.isdigit() and int(length) > self.max_bytes:
                detail = f"the request body is larger than {self.max_bytes // (1024 * 1024)} MB"
                await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(model: Any = None, *, config: str | None = None, checkpoint: str | None = None, device: Any = None,
               model_name: str | None = None, limits: DemoLimits | None = None,
               samples_dir: Path | None = SAMPLES_DIR, static_dir: Path = STATIC_DIR) -> FastAPI:
    """The demo as an ASGI app, to serve with any ASGI server (``uvicorn``, ``hypercorn``...).

    ``model`` is a ``SAM2VideoPredictor``, a ``SAM2Base``, a release name / Hub id (downloaded), or None
    for ``sam2.1_hiera_tiny``; ``checkpoint`` (+ ``config``) loads local weights instead. ``limits`` sets
    the per-session limits, ``samples_dir`` the gallery (None: empty).
    """
    predictor, name = load_predictor(model, config, checkpoint, device)
    service = DemoService(predictor, model_name or name, limits or DemoLimits(), samples_dir)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        sweeper = asyncio.create_task(_sweep_forever(service))
        try:
            yield
        finally:
            sweeper.cancel()
            service.shutdown()

    app = FastAPI(title="SAM 2 demo", version="1", lifespan=lifespan,
                  description="Segment and track objects in images and videos with SAM 2 / 2.1. Masks are "
                              "COCO RLE at the frame's original size; coordinates are original pixels.")
    app.state.demo = service
    app.add_middleware(BodyLimit, max_bytes=MAX_JSON_BYTES)
    _add_error_handlers(app)
    _add_page(app, static_dir)
    _add_session_routes(app, service)
    _add_prompt_routes(app, service)
    _add_result_routes(app, service)
    return app


async def _sweep_forever(service: DemoService) -> None:
    period = max(1.0, min(60.0, service.limits.session_idle_s / 4))
    while True:
        await asyncio.sleep(period)
        service.sweep()


def _timing(job: Job) -> dict[str, str]:
    return {"Server-Timing": f"queue;dur={job.queue_s * 1000:.1f}, model;dur={job.run_s * 1000:.1f}"}


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DemoError)
    async def demo_error(request: Request, exc: DemoError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:  # the server logs the traceback
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return JSONResponse({"detail": "invalid request: " + "; ".join(parts)}, status_code=422)


def _add_page(app: FastAPI, static_dir: Path) -> None:
    app.mount("/static", StaticFiles(directory=static_dir, check_dir=False), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        page = static_dir / "index.html"
        if page.is_file():
            return FileResponse(page, media_type="text/html")
        return HTMLResponse("<h1>SAM 2 demo</h1><p>The page is not installed; the API is at <a href='/docs'>"
                            "/docs</a>.</p>")


def _add_session_routes(app: FastAPI, service: DemoService) -> None:
    limits = service.limits

    @app.get("/api/info", response_model=schemas.Info, tags=["server"])
    async def info() -> dict:
        """Model, device, limits, the sample gallery, and whether the model is busy."""
        return {"model": service.model_name, "device": service.device, "limits": limits.as_json(),
                "samples": [s.as_json() for s in service.samples()], "busy": service.worker.busy,
                "queued": service.worker.queued, "sessions": len(service.sessions)}

    @app.post("/api/sessions", status_code=201, response_model=schemas.SessionInfo, tags=["sessions"],
              responses=ERRORS, openapi_extra=UPLOAD_BODY)
    async def open_session(request: Request) -> Response:
        """Open a session from an uploaded image or video (multipart field ``file``) or from a bundled
        sample (JSON ``{"sample": id}``). Files are identified by decoding them, never by their name."""
        service.sweep()
        service.sessions.check_room()
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("multipart/form-data"):
            length = request.headers.get("content-length", "")
            if length.isdigit() and int(length) > limits.max_upload_bytes + 64 * 1024:
                raise DemoError(413, too_large_message(limits))
            form = await request.form(max_files=1, max_fields=4)
            try:
                upload = form.get("file")
                if upload is None or isinstance(upload, str):
                    raise DemoError(422, "invalid request: the multipart field 'file' with an image or video "
                                         "is missing")
                path = await save_upload(upload, service.tmp, limits)
                name = safe_name(upload.filename)
            finally:
                await form.close()
        elif ctype.startswith("application/json"):
            try:
                body = schemas.OpenSample.model_validate(await request.json())
            except ValueError as exc:
                raise DemoError(422, f"invalid request: expected {{\"sample\": id}} ({exc})") from None
            sample = service.sample(body.sample)
            path, name = await run_in_threadpool(service.copy_sample, sample), sample.id
        else:
            raise DemoError(415, "send the file as multipart/form-data (field 'file'), or JSON "
                                 "{\"sample\": id} to open a bundled sample")
        media = await run_in_threadpool(service.decode, path)
        session, job = await service.worker.run(lambda: service.open_job(media, name), "open session")
        return JSONResponse(session.describe(), status_code=201, headers=_timing(job))

    @app.get("/api/sessions/{sid}", response_model=schemas.SessionState, tags=["sessions"], responses=ERRORS)
    async def get_session(sid: str) -> dict:
        """The session's media and the ids of its objects."""
        session = service.sessions.get(sid)
        return {**session.describe(), "objects": session.object_ids}

    @app.delete("/api/sessions/{sid}", response_model=schemas.Closed, tags=["sessions"], responses=ERRORS)
    async def close_session(sid: str) -> dict:
        """Close the session and release its memory (a running propagation is stopped)."""
        service.close(sid)
        return {"closed": True}

    @app.get("/api/sessions/{sid}/frames/{idx}", tags=["sessions"], responses={
        200: {"content": {"image/jpeg": {}}, "description": "the frame as JPEG, original size"}, **ERRORS})
    def frame_jpeg(sid: str, idx: int) -> Response:
        """Frame ``idx`` as a JPEG image at its original size."""
        session = service.sessions.get(sid)
        session.check_frame(idx)
        return Response(session.jpeg(idx), media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


def _add_prompt_routes(app: FastAPI, service: DemoService) -> None:
    predictor, limits, worker = service.predictor, service.limits, service.worker

    @app.post("/api/sessions/{sid}/points", response_model=schemas.FrameMasks, tags=["prompts"], responses=ERRORS)
    async def add_points(sid: str, body: schemas.PointsRequest) -> Response:
        """Clicks and/or a box for one object on one frame; returns the masks of every object on that frame."""
        session = service.sessions.get(sid)
        result, job = await worker.run(lambda: session.add_points_job(
            predictor, limits, body.frame, body.object_id, body.points, body.labels, body.box,
            body.clear_old_points), "points")
        return JSONResponse(result, headers=_timing(job))

    @app.post("/api/sessions/{sid}/mask", response_model=schemas.FrameMasks, tags=["prompts"], responses=ERRORS)
    async def add_mask(sid: str, body: schemas.MaskRequest) -> Response:
        """A mask (COCO RLE of the frame's size) as the prompt of one object on one frame."""
        session = service.sessions.get(sid)
        mask = body.mask.model_dump()
        result, job = await worker.run(
            lambda: session.add_mask_job(predictor, limits, body.frame, body.object_id, mask), "mask")
        return JSONResponse(result, headers=_timing(job))

    @app.post("/api/sessions/{sid}/clear_frame", response_model=schemas.FrameMasks, tags=["prompts"],
              responses=ERRORS)
    async def clear_frame(sid: str, body: schemas.ClearFrameRequest) -> Response:
        """Remove the prompts of one object (or of all, ``object_id`` null) on a frame. An object left with
        no prompt anywhere is removed."""
        session = service.sessions.get(sid)
        result, job = await worker.run(lambda: session.clear_frame_job(predictor, body.frame, body.object_id),
                                       "clear frame")
        return JSONResponse(result, headers=_timing(job))

    @app.delete("/api/sessions/{sid}/objects/{obj_id}", response_model=schemas.ObjectList, tags=["prompts"],
                responses=ERRORS)
    async def remove_object(sid: str, obj_id: int) -> dict:
        """Remove an object, its prompts and its masks on every frame."""
        session = service.sessions.get(sid)
        result, _ = await worker.run(lambda: session.remove_object_job(predictor, obj_id), "remove object")
        return result


def _add_result_routes(app: FastAPI, service: DemoService) -> None:
    predictor, worker = service.predictor, service.worker

    @app.get("/api/sessions/{sid}/propagate", tags=["tracking"], responses={
        200: {"content": {"text/event-stream": {}}, "description": "server-sent events: queued, start, "
              "frame (one per frame), then end, cancelled or error"}, **ERRORS})
    async def propagate(request: Request, sid: str,
                        direction: str = Query("forward", pattern="^(forward|backward|both)$"),
                        start_frame: int | None = Query(None, ge=0)) -> StreamingResponse:
        """Track every object through the video, streaming each frame's masks as they are computed.
        A newer propagation of the same session stops this one; so do ``/cancel`` and disconnecting."""
        session = service.sessions.get(sid)
        propagation.check_plan(session, direction, start_frame)
        prop = propagation.Propagation(session, predictor, direction, start_frame)
        events = propagation.stream(prop, worker, request.is_disconnected)
        return StreamingResponse(events, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.post("/api/sessions/{sid}/cancel", response_model=schemas.Cancelled, tags=["tracking"], responses=ERRORS)
    async def cancel(sid: str) -> dict:
        """Stop the session's propagation (it ends with a ``cancelled`` event)."""
        session = service.sessions.get(sid)
        prop = session.propagation
        return {"cancelled": bool(prop is not None and prop.cancel(worker))}

    @app.get("/api/sessions/{sid}/frames/{idx}/masks", response_model=schemas.FrameMasks, tags=["tracking"],
             responses=ERRORS)
    async def frame_masks(sid: str, idx: int) -> dict:
        """The latest masks of every object on frame ``idx`` (empty when the frame was not segmented)."""
        session = service.sessions.get(sid)
        session.check_frame(idx)
        return session.frame_result(idx)

    @app.post("/api/sessions/{sid}/everything", response_model=schemas.EverythingResult, tags=["tracking"],
              responses=ERRORS)
    async def everything(sid: str, body: schemas.EverythingRequest) -> Response:
        """Segment everything on one frame with the automatic mask generator (largest masks first)."""
        session = service.sessions.get(sid)
        session.check_frame(body.frame)
        result, job = await worker.run(lambda: _everything_job(predictor, session, body), "everything")
        return JSONResponse(result, headers=_timing(job))

    @app.get("/api/sessions/{sid}/export", tags=["export"], responses={
        200: {"content": {"application/zip": {}, "application/json": {}, "video/mp4": {}},
              "description": "a download"}, **ERRORS})
    async def export(sid: str, format: str = Query(..., pattern="^(davis|sav|coco|mp4)$")) -> FileResponse:
        """Download the masks: ``davis`` (zip of palette PNGs), ``sav`` (zip of per-object PNGs),
        ``coco`` (COCO RLE JSON) or ``mp4`` (the video with the masks drawn)."""
        session = service.sessions.get(sid)
        out = await run_in_threadpool(exports.export, session, format, service.tmp)
        return FileResponse(out.path, media_type=out.media_type, filename=out.filename,
                            background=BackgroundTask(out.path.unlink, missing_ok=True))


def _everything_job(predictor: Any, session: Any, body: schemas.EverythingRequest) -> dict:
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    session.check_open()
    generator = SAM2AutomaticMaskGenerator(predictor.model, points_per_side=body.points_per_side,
                                           pred_iou_thresh=body.pred_iou_thresh,
                                           stability_score_thresh=body.stability_score_thresh,
                                           output_mode="coco_rle")
    records = generator.generate(session.state.frames.raw_frame(body.frame))
    records.sort(key=lambda r: -r["area"])
    masks = [{"rle": {"size": [int(v) for v in r["segmentation"]["size"]], "counts": r["segmentation"]["counts"]},
              "area": int(r["area"]), "score": float(r["predicted_iou"]), "bbox": [float(v) for v in r["bbox"]]}
             for r in records]
    return {"frame": body.frame, "masks": masks}
