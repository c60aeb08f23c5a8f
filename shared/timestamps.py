"""The one timestamp parser: RFC 3339 / ISO 8601 text to an aware or naive datetime.

Event attributes (`time`), `date-time` fields in event data and the API's `before=` cursor
all go through `parse_timestamp`, so they accept and refuse the same spellings.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["iso", "parse_rfc3339", "parse_timestamp"]


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z and milliseconds, as JavaScript writes it (what the APIs show)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_timestamp(text: str, *, default_tz: bool = False) -> datetime:
    """Parse ISO 8601 text (`2026-01-01T12:00:00Z`, `...+02:00`, `20260101T120000Z`).

    With `default_tz`, a time without a zone is taken as UTC; otherwise it stays naive.
    Raises ValueError naming the text when it is not a timestamp.
    """
    try:
        parsed = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(f"not an ISO 8601 timestamp: {text!r}") from None
    if default_tz and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def parse_rfc3339(text: str) -> datetime:
    """A strict RFC 3339 date-time: a 'T' between date and time and a zone ('Z' or an offset)."""
    parsed = parse_timestamp(text)
    if "T" not in text.upper() or parsed.tzinfo is None:
        raise ValueError(f"not an RFC 3339 date-time with a zone: {text!r}")
    return parsed
