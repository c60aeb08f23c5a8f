"""The Proteus gateway: REST API, WebSockets and the web page (see docs/architecture.md)."""
