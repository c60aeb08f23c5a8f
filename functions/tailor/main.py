"""The tailor function's WSGI app: `gunicorn 'functions.tailor.main:create_app()'`."""
from __future__ import annotations

from flask import Flask

from functions.tailor.handler import TailorFunction
from shared.config import Settings
from shared.runtime import create_function_app


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    return create_function_app(TailorFunction.from_settings(settings), settings)
