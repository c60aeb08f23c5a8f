"""gunicorn settings for notify: port, workers, threads and timeout (see shared/gunicorn_base.py)."""

from shared.gunicorn_base import gunicorn_config

globals().update(gunicorn_config("notify"))
