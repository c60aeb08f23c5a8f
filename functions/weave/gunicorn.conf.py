"""gunicorn settings for weave: one worker owns the GPU; long requests (see shared/gunicorn_base.py)."""
from shared.gunicorn_base import gunicorn_settings

globals().update(gunicorn_settings("weave", threads=2, timeout=600))
