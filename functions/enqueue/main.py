"""The enqueue function's WSGI app: `gunicorn 'functions.enqueue.main:create_app()'`."""

from __future__ import annotations

from flask import Flask

from functions.enqueue.handler import EnqueueFunction
from shared.config import Settings
from shared.runtime import create_function_app


def create_function(settings: Settings | None = None) -> EnqueueFunction:
    """The function object alone, from settings (the stream runner's pull mode calls this)."""
    return EnqueueFunction.from_settings(settings or Settings.from_env())


def create_app(settings: Settings | None = None) -> Flask:
    """The function behind the CloudEvents HTTP runtime (gunicorn calls this)."""
    settings = settings or Settings.from_env()
    return create_function_app(create_function(settings), settings)
