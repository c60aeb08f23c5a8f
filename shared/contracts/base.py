"""The base of every contract model, and turning pydantic's errors into our 400s.

Every contract is strict (no silent coercion: "30" is not a number, true is not 1), refuses
unknown fields, and names the offending field and value when it refuses something.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails

from shared.errors import BadRequest, ProteusError

M = TypeVar("M", bound="Contract")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_UNION_TAGS = frozenset({"int", "float", "str", "bool", "none", "list", "dict"})
SECRET_FIELDS = frozenset({"password"})


class Contract(BaseModel):
    """A JSON object with a fixed set of fields, each with its rule."""

    model_config = ConfigDict(extra="forbid", strict=True, regex_engine="python-re", validate_by_name=True)
    # Fields whose absence and `null` differ on the wire (dumped even when None).
    nullable_fields: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def parse(
        cls: type[M],
        data: Any,
        *,
        context: Mapping[str, Any] | None = None,
        error: type[ProteusError] = BadRequest,
        prefix: str = "",
    ) -> M:
        """The model of `data`, or `error` naming the first offending field and its value."""
        try:
            return cls.model_validate(data, context=dict(context or {}))
        except ValidationError as exc:
            raise as_error(exc, error=error, prefix=prefix) from None

    def to_data(self) -> dict[str, Any]:
        """The JSON object (fields left unset and None are left out, unless nullable)."""
        data = self.model_dump(mode="json", exclude_none=True)
        for name in self.nullable_fields:
            if name in self.model_fields_set:
                data[name] = getattr(self, name)
        return data


def show(value: Any) -> str:
    """A value for an error message, shortened."""
    text = repr(value)
    return text if len(text) <= 100 else text[:100] + "..."


def as_error(exc: ValidationError, *, error: type[ProteusError] = BadRequest, prefix: str = "") -> ProteusError:
    """One ProteusError for a pydantic ValidationError: the first problem, field and value named."""
    problems = [p for p in exc.errors(include_url=False) if p["type"] != "none_required"] or exc.errors()
    first = problems[0]
    field = _field(first)
    return error(describe(first, prefix=prefix), field=(prefix + field) if field else None)


def describe(problem: ErrorDetails, *, prefix: str = "") -> str:
    """`<field> <what is wrong>, got <value>` (a password's value is never shown)."""
    field = _field(problem)
    kind, message = problem["type"], problem["msg"]
    if kind == "missing":
        return f"{prefix}{field} is required"
    if kind == "extra_forbidden":
        return f"field {prefix}{field!r} cannot be set here"
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    message = message[0].lower() + message[1:] if message else message
    message = message.replace("input should be", "must be").replace("string should", "must")
    if not field:
        return message
    subject = f"{prefix}{field}"
    if kind == "secret" or field in SECRET_FIELDS and kind == "proteus":
        return f"{subject} {message}"
    value = "a value" if field in SECRET_FIELDS else show(problem.get("input"))
    return f"{subject} {value} {message}" if kind == "proteus" else f"{subject} {message}, got {value}"


def _field(problem: ErrorDetails) -> str:
    """The field a problem is about: `steps`, `then_weave.steps` (union branch names left out)."""
    parts = []
    for part in problem["loc"]:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif part in _UNION_TAGS or not _NAME.match(part) or part[0].isupper():
            continue  # a union branch ("constrained-int", "function-after[...]", a model's name)
        else:
            parts.append(f".{part}" if parts else part)
    return "".join(parts)
