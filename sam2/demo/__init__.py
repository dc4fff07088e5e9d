"""The ``sam2 demo`` web app: segment and track objects in the browser.

``create_app(...)`` returns the ASGI application (FastAPI), to serve with ``sam2 demo`` or any ASGI server.
FastAPI and uvicorn (the ``[demo]`` extra) are imported only when it is called, so ``import sam2.demo`` works
without them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def create_app(*args: Any, **kwargs: Any) -> Any:
    """Build the demo's FastAPI app; see :func:`sam2.demo.app.create_app` for the arguments."""
    try:
        from sam2.demo.app import create_app as build
    except ModuleNotFoundError as exc:
        if exc.name in ("fastapi", "starlette", "multipart", "python_multipart", "pydantic"):
            raise ModuleNotFoundError(f"the demo needs {exc.name}: pip install 'sam2-kit[demo]'", name=exc.name) \
                from exc
        raise
    return build(*args, **kwargs)
