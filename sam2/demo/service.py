"""What the demo server holds: the one predictor, its worker thread, the sessions and a scratch folder."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from sam2.demo.errors import DemoError
from sam2.demo.samples import SAMPLES_DIR, Sample, list_samples
from sam2.demo.sessions import DemoLimits, DemoSession, new_session_id
from sam2.demo.store import SessionStore
from sam2.demo.uploads import Media, decode_media, save_stream
from sam2.demo.worker import ModelWorker

log = logging.getLogger(__name__)


def load_predictor(model: Any = None, config: str | None = None, checkpoint: str | None = None,
                   device: Any = None) -> tuple[Any, str]:
    """(``SAM2VideoPredictor``, display name) from a predictor, a ``SAM2Base``, or a model name / Hub id /
    checkpoint (as the ``sam2`` commands take them; the default model is ``sam2.1_hiera_tiny``).

    Corrections on frames that were already tracked are kept as prompts by the next propagation
    (``add_all_frames_to_correct_as_cond``), which is what a person correcting a frame expects.
    """
    import torch

    from sam2.sam2_video_predictor import SAM2VideoPredictor

    if isinstance(model, SAM2VideoPredictor):
        predictor, name = model, type(model.model).__name__
    elif isinstance(model, torch.nn.Module):
        predictor, name = SAM2VideoPredictor(model), type(model).__name__
    else:
        from sam2.cli.common import ModelSpec, build_model
        from sam2.registry import DEFAULT_MODEL, find_release

        name = model or (Path(checkpoint).stem if checkpoint else DEFAULT_MODEL)
        try:
            if checkpoint is not None:
                spec = ModelSpec(config=config or find_release(name).config, checkpoint=str(checkpoint))
            else:
                spec = ModelSpec(hub_id=find_release(name).hub_id)
        except KeyError as exc:
            hint = "; pass config= with checkpoint=" if checkpoint is not None else ""
            raise ValueError(f"{exc.args[0]}{hint}") from None
        if device is None:
            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        predictor = build_model(spec, device, video=True)
    predictor.add_all_frames_to_correct_as_cond = True
    predictor.show_progress = False
    predictor.eval()
    return predictor, name


class DemoService:
    """The state behind the routes. Model work goes through :attr:`worker`; one instance per app."""

    def __init__(self, predictor: Any, model_name: str, limits: DemoLimits,
                 samples_dir: Path | None = SAMPLES_DIR) -> None:
        self.predictor = predictor
        self.model_name = model_name
        self.limits = limits
        self.samples_dir = samples_dir
        self.worker = ModelWorker()
        self.sessions = SessionStore(limits)
        self.tmp = Path(tempfile.mkdtemp(prefix="sam2-demo-"))

    @property
    def device(self) -> str:
        return str(self.predictor.device)

    def samples(self) -> list[Sample]:
        return list_samples(self.samples_dir)

    def sample(self, sample_id: str) -> Sample:
        for s in self.samples():
            if s.id == sample_id:
                return s
        ids = [s.id for s in self.samples()]
        raise DemoError(404, f"sample {sample_id!r} does not exist; samples: {ids if ids else 'none'}")

    # ------------------------------------------------------------------------------ sessions

    def copy_sample(self, sample: Sample) -> Path:
        with open(sample.path, "rb") as f:
            return save_stream(f, self.tmp, self.limits)

    def decode(self, path: Path) -> Media:
        """Decode a saved upload (blocking); the file is removed unless it is a usable video."""
        try:
            media = decode_media(path, self.limits)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        if media.kind == "image":
            path.unlink(missing_ok=True)
        return media

    def open_job(self, media: Media, name: str) -> DemoSession:
        """Model thread: open the predictor's session on decoded media (embeds frame 0) and register it."""
        try:
            self.sessions.check_room()
            source = [media.image] if media.kind == "image" else str(media.path)
            state = self.predictor.init_state(source, offload_video_to_cpu=True)
        except BaseException:
            if media.path is not None:
                media.path.unlink(missing_ok=True)
            raise
        session = DemoSession(id=new_session_id(), kind=media.kind, name=name, state=state, width=media.width,
                              height=media.height, num_frames=media.num_frames, fps=media.fps,
                              upload_path=media.path)
        try:
            self.sessions.add(session)
        except BaseException:
            session.release_job()
            raise
        log.info("session %s opened: %s %s, %d frame(s) of %dx%d", session.id, media.kind, name,
                 media.num_frames, media.width, media.height)
        return session

    def close(self, sid: str) -> None:
        """Forget the session now; its memory is released on the model thread after any running job."""
        session = self.sessions.pop(sid)
        if session is None:
            self.sessions.get(sid)  # raises the 404
            return
        self._release(session)

    def _release(self, session: DemoSession) -> None:
        if session.propagation is not None:
            session.propagation.cancel(self.worker)
        try:
            self.worker.submit(session.release_job, name=f"close {session.id}")
        except RuntimeError:  # worker already shut down
            session.release_job()
        log.info("session %s closed", session.id)

    def sweep(self) -> int:
        """Close the sessions idle for longer than the limit; returns how many."""
        expired = self.sessions.expired()
        for session in expired:
            log.info("session %s expired after %d s idle", session.id, self.limits.session_idle_s)
            self._release(session)
        return len(expired)

    def shutdown(self) -> None:
        for session in self.sessions.pop_all():
            self._release(session)
        self.worker.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
