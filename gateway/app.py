"""The gateway's WSGI app: `gunicorn -c gateway/gunicorn.conf.py 'gateway.app:create_app()'`."""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from gateway import apikeys, errors, images, jobs, limits, observability, resources, security, site, users, vton, ws
from gateway.json_provider import OrjsonProvider
from gateway.v1 import ratelimit as key_ratelimit
from gateway.v1 import routes as v1
from gateway.ws_handshake import WebSocketRoute
from shared.config import Settings


def create_app(settings: Settings | None = None) -> Flask:
    """The app for `settings` (default: read from the environment once)."""
    settings = settings or Settings.from_env()
    app = Flask(__name__, static_folder="static", static_url_path="/static")
    app.json = OrjsonProvider(app)
    app.config.from_mapping(
        PROTEUS_SETTINGS=settings,
        # The local storage backend's /files route receives uploads through this app.
        MAX_CONTENT_LENGTH=settings.max_upload_bytes + 64 * 1024,
    )
    # Behind a reverse proxy: trust one hop's X-Forwarded-For/-Proto/-Host (Secure cookies).
    # WebSocket handshakes are served in front of Flask's request handling (ws_handshake.py).
    app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
        WebSocketRoute(app, app.wsgi_app), x_for=1, x_proto=1, x_host=1
    )

    observability.init_app(app, settings)  # first: its after_request sees every answer
    resources.init_app(app, settings)
    errors.init_app(app)
    security.init_app(app, settings)
    key_ratelimit.init_app(app, settings)
    for module in (site, users, images, vton, jobs, ws, apikeys, v1):
        app.register_blueprint(module.bp)
    if settings.storage_backend == "local":
        from shared.storage.local_http import local_files_blueprint

        app.register_blueprint(local_files_blueprint(resources.storage_of(app)))  # type: ignore[arg-type]
    limits.init_app(app, settings)
    if settings.frontend_origins:
        from flask_cors import CORS

        CORS(
            app,
            origins=list(settings.frontend_origins),
            supports_credentials=True,
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=["Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining"],
        )
    return app
