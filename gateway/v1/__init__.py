"""The public, FASHN-compatible server-to-server API (/v1), authenticated by API keys."""
