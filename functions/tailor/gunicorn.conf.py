"""gunicorn settings for tailor (see shared/gunicorn_base.py)."""
from shared.gunicorn_base import gunicorn_settings

globals().update(gunicorn_settings("tailor", threads=2, timeout=120))
