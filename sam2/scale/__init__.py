"""Scale-out of ``sam2 auto`` and ``sam2 vos`` over Ray workers (``--ray``; the ``[scale]`` extra).

- :mod:`sam2.scale.auto_job`: :func:`~sam2.scale.auto_job.segment_everything` (``sam2 auto --ray``)
- :mod:`sam2.scale.vos_job`: :func:`~sam2.scale.vos_job.track_videos` (``sam2 vos --ray``)
- :mod:`sam2.scale.ray_runtime`: local or cluster runtime, the worker pool (:class:`ScaleOptions`)
- :mod:`sam2.scale.ledger`: done / failure bookkeeping (resume, nothing lost, nothing twice)
- :mod:`sam2.scale.paths`: local paths and fsspec URLs

Ray is imported only when a job runs; importing this package does not need it.
"""
