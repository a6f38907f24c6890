"""Per-image tasks for the batch runner: read inputs (io), compute (pure core), write outputs (io).

Each task is a small picklable class: ``setup()`` runs once per worker (load a
model), ``__call__(job)`` processes one image and returns per-image figures,
``versions()`` names what to record in ``run_metadata.json``.
"""
