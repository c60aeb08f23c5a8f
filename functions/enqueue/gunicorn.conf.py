"""gunicorn settings for enqueue (see shared/gunicorn_base.py)."""
from shared.gunicorn_base import gunicorn_settings

globals().update(gunicorn_settings("enqueue", threads=4))
