"""gunicorn settings for notify (see shared/gunicorn_base.py)."""
from shared.gunicorn_base import gunicorn_settings

globals().update(gunicorn_settings("notify", threads=4))
