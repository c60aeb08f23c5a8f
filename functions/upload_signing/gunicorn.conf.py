"""gunicorn settings for upload_signing (see shared/gunicorn_base.py)."""
from shared.gunicorn_base import gunicorn_settings

globals().update(gunicorn_settings("upload_signing", threads=4))
