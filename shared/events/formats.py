"""The JSON Schema `format` checks the event schemas use (no optional jsonschema extras)."""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

import jsonschema

from shared.timestamps import parse_rfc3339


def check_date_time(value: object) -> bool:
    """`date-time`: RFC 3339 with a 'T' and a zone (other JSON types pass: `type` checks them)."""
    if not isinstance(value, str):
        return True
    try:
        parse_rfc3339(value)
    except ValueError:
        return False
    return True


def check_uri(value: object) -> bool:
    """`uri`: an absolute URI with a scheme and a host, no whitespace."""
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return bool(parts.scheme and parts.netloc) and not any(c.isspace() for c in value)


def make_format_checker() -> jsonschema.FormatChecker:
    """Draft 2020-12 formats, with date-time and uri checked by the functions above."""
    checker = jsonschema.FormatChecker()
    checker.checks("date-time")(check_date_time)
    checker.checks("uri")(check_uri)
    return checker


FORMAT_CHECKER: Final = make_format_checker()
