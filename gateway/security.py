"""Security headers on every response, and a Content-Security-Policy for the web page.

The page loads only its own scripts and styles (no inline code), talks to the gateway
and its WebSocket, and uploads to / downloads from the storage origin (the gateway itself
for local storage, the S3 endpoint otherwise).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response

from shared.config import Settings


def storage_origin(settings: Settings) -> str | None:
    """The origin browsers upload to and download from, when it is not the gateway's."""
    if settings.storage_backend != "s3":
        return None
    endpoint = settings.s3_public_endpoint_url or settings.s3_endpoint_url
    if not endpoint:
        return "https://*.amazonaws.com"
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(settings: Settings) -> str:
    extra = f" {origin}" if (origin := storage_origin(settings)) else ""
    if origin and origin.startswith("https://") and "*" not in origin:
        extra += f" https://*.{origin.removeprefix('https://')}"  # virtual-hosted bucket URLs
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src 'self' data: blob:{extra}",
            f"connect-src 'self' ws: wss:{extra}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


def init_app(app: Flask, settings: Settings) -> None:
    policy = content_security_policy(settings)

    @app.after_request
    def add_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if response.mimetype == "text/html":
            response.headers.setdefault("Content-Security-Policy", policy)
        return response
