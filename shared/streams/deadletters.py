"""Inspect and replay dead letters (entries the runner gave up on).

    python -m shared.streams.deadletters list [--stream S] [--json]
    python -m shared.streams.deadletters replay [--stream S] (--id ID | --all)

S is a route's stream (`proteus:weave`), its dead-letter stream (`proteus:weave:dead`) or the
consuming function (`weave`); without it every route's dead letters are used. Names get
REDIS_KEY_PREFIX. Replay appends the entry's original fields to the original stream and
deletes the dead letter, in one transaction; the replayed entry starts with fresh attempts.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import redis

from shared.errors import BadRequest, NotFound
from shared.routing import ROUTES, Route, prefixed
from shared.streams import commands
from shared.streams.publish import STREAM_MAXLEN

DEAD_SUFFIX = ":dead"


@dataclass(frozen=True)
class DeadLetter:
    """One dead-letter entry, as the runner wrote it."""

    dead_stream: str
    id: str
    type: str
    error: str
    status: str
    attempts: int
    original_id: str
    stream: str
    failed_at: str
    fields: dict[str, str] = field(repr=False)

    @classmethod
    def from_entry(cls, dead_stream: str, entry_id: str, values: dict[str, str]) -> DeadLetter:
        try:
            fields = json.loads(values.get("fields", "{}"))
        except ValueError:
            fields = {}
        return cls(
            dead_stream=dead_stream,
            id=entry_id,
            type=values.get("type", ""),
            error=values.get("error", ""),
            status=values.get("status", ""),
            attempts=int(values.get("attempts", "0") or 0),
            original_id=values.get("original_id", ""),
            stream=values.get("stream", ""),
            failed_at=values.get("failed_at", ""),
            fields=fields if isinstance(fields, dict) else {},
        )


def dead_streams(prefix: str = "", stream: str | None = None) -> list[str]:
    """The (prefixed) dead-letter streams to look at: one route's, or all of them."""
    return [prefixed(r.dead_letter_stream, prefix) for r in _routes(stream)]


def list_dead_letters(
    client: redis.Redis, *, prefix: str = "", stream: str | None = None, count: int = 1000
) -> list[DeadLetter]:
    """The oldest `count` dead letters of each selected stream, oldest first."""
    letters = []
    for dead in dead_streams(prefix, stream):
        for entry_id, values in commands.read_range(client, dead, count=count):
            letters.append(DeadLetter.from_entry(dead, entry_id, values))
    return letters


def replay(
    client: redis.Redis, *, prefix: str = "", stream: str | None = None, entry_id: str | None = None
) -> list[tuple[str, str]]:
    """Re-publish one dead letter (`entry_id`) or all of them; returns (dead id, new id) pairs.

    Raises NotFound when `entry_id` is in none of the selected dead-letter streams.
    """
    if entry_id is not None and not re.fullmatch(r"\d+-\d+", entry_id):
        raise BadRequest(f"a stream entry id looks like 1767225600000-0, got {entry_id!r}", field="id")
    replayed = []
    for dead in dead_streams(prefix, stream):
        entries = (
            commands.read_range(client, dead, entry_id, entry_id) if entry_id else commands.read_range(client, dead)
        )
        for dead_id, values in entries:
            letter = DeadLetter.from_entry(dead, dead_id, values)
            if not letter.fields:
                raise ValueError(f"dead letter {dead_id} in {dead} has no original fields to replay")
            original = dead[: -len(DEAD_SUFFIX)]
            pipe = client.pipeline(transaction=True)
            commands.add(pipe, original, letter.fields, maxlen=STREAM_MAXLEN)
            pipe.xdel(dead, dead_id)
            new_id, _ = pipe.execute()
            replayed.append((dead_id, str(new_id)))
    if entry_id and not replayed:
        raise NotFound(f"no dead letter {entry_id!r} in {', '.join(dead_streams(prefix, stream))}", field="id")
    return replayed


def _routes(stream: str | None) -> list[Route]:
    if not stream:
        return list(ROUTES)
    for route in ROUTES:
        if stream in (route.stream, route.dead_letter_stream, route.consumer):
            return [route]
    names = ", ".join(r.stream for r in ROUTES)
    raise NotFound(f"unknown stream {stream!r}; streams: {names}", field="stream")


def _print_table(letters: list[DeadLetter]) -> None:
    if not letters:
        print("no dead letters")
        return
    print(f"{'dead-letter stream':<28} {'id':<17} {'type':<30} {'tries':>5} {'status':>6}  error")
    for d in letters:
        error = d.error if len(d.error) <= 80 else d.error[:77] + "..."
        print(f"{d.dead_stream:<28} {d.id:<17} {d.type:<30} {d.attempts:>5} {d.status or '-':>6}  {error}")
    print(f"{len(letters)} dead letter(s)")


def main(argv: Sequence[str] | None = None, client: redis.Redis | None = None, prefix: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.streams.deadletters", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="show dead letters")
    listing.add_argument("--stream", help="a stream, its :dead stream, or its function")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    again = commands.add_parser("replay", help="re-publish dead letters to their stream")
    again.add_argument("--stream", help="a stream, its :dead stream, or its function")
    which = again.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", help="the dead letter's entry id")
    which.add_argument("--all", action="store_true", help="every dead letter of the selected streams")
    args = parser.parse_args(argv)

    if client is None or prefix is None:
        from shared.config import Settings
        from shared.redis_client import redis_from_settings

        settings = Settings.from_env()
        client = client or redis_from_settings(settings)
        prefix = settings.redis_key_prefix if prefix is None else prefix
    try:
        if args.command == "list":
            letters = list_dead_letters(client, prefix=prefix, stream=args.stream)
            if args.json:
                for letter in letters:
                    print(json.dumps(asdict(letter)))
            else:
                _print_table(letters)
        else:
            done = replay(client, prefix=prefix, stream=args.stream, entry_id=args.id)
            for dead_id, new_id in done:
                print(f"replayed {dead_id} as {new_id}")
            print(f"{len(done)} dead letter(s) replayed")
    except (NotFound, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
