"""The field types every contract shares: ids, storage keys, categories, codes, messages,
and the states a try-on and a job go through.

Each is an `Annotated` type carrying its own rule (pattern, length, enum), so a model field
declared with it validates and documents itself. In the generated JSON Schemas they are the
shared `$defs` (`id`, `key`, `category`, `category_or_auto`, `code`, `message`), identical in
every cloudevents-schemas/*.json file; in the OpenAPI document they are inlined.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal, get_args

from pydantic import Field, StringConstraints, WithJsonSchema

# A marker the generator (shared/contracts/generate.py) turns into `$ref: #/$defs/<name>`.
DEF_MARKER: Final = "x-proteus-def"

ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
KEY_PATTERN: Final = r"^[A-Za-z0-9_-](?!.*\.\.)(?!.*//)[A-Za-z0-9._~+=@,/-]*$"
MAX_KEY_LENGTH: Final = 1024
CODE_PATTERN: Final = r"^[a-z][a-z0-9_]{0,63}$"
MAX_MESSAGE_LENGTH: Final = 2000
IDEMPOTENCY_KEY_PATTERN: Final = r"^[\x21-\x7e]{1,200}$"

CategoryName = Literal["upper", "lower", "overall"]
CategoryOrAutoName = Literal["upper", "lower", "overall", "auto"]
CATEGORIES: Final[tuple[str, ...]] = get_args(CategoryName)
CATEGORIES_OR_AUTO: Final[tuple[str, ...]] = get_args(CategoryOrAutoName)
UploadMethod = Literal["PUT", "POST"]
TryOnStatus = Literal["queued", "processing", "done", "failed"]
JobStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]
JobType = Literal["try_on", "tailor"]

SHARED_DEFS: Final[dict[str, dict[str, Any]]] = {
    "id": {
        "type": "string",
        "pattern": ID_PATTERN,
        "description": "An opaque id (a UUID in practice): letters, digits, '-' and '_', 1 to 64 characters.",
    },
    "key": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_KEY_LENGTH,
        "pattern": KEY_PATTERN,
        "description": "A storage key relative to the bucket or storage root: no leading '/', no '..', no '//', "
        "ASCII letters, digits and ._~+=@,/- only.",
    },
    "category": {
        "type": "string",
        "enum": list(CATEGORIES),
        "description": "The garment category: upper body, lower body, or a full outfit.",
    },
    "category_or_auto": {
        "type": "string",
        "enum": list(CATEGORIES_OR_AUTO),
        "description": "The garment category, or 'auto' to let tailor classify the garment.",
    },
    "code": {
        "type": "string",
        "pattern": CODE_PATTERN,
        "description": "A machine-readable snake_case code (for example the ProteusError code).",
    },
    "message": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_MESSAGE_LENGTH,
        "description": "A human-readable message.",
    },
}


def _shared(name: str) -> WithJsonSchema:
    return WithJsonSchema({DEF_MARKER: name})


Id = Annotated[str, StringConstraints(pattern=ID_PATTERN), _shared("id")]
Key = Annotated[str, StringConstraints(min_length=1, max_length=MAX_KEY_LENGTH, pattern=KEY_PATTERN), _shared("key")]
Category = Annotated[CategoryName, _shared("category")]
CategoryOrAuto = Annotated[CategoryOrAutoName, _shared("category_or_auto")]
Code = Annotated[str, StringConstraints(pattern=CODE_PATTERN), _shared("code")]
Message = Annotated[str, StringConstraints(min_length=1, max_length=MAX_MESSAGE_LENGTH), _shared("message")]
IdempotencyKey = Annotated[
    str,
    StringConstraints(pattern=IDEMPOTENCY_KEY_PATTERN),
    Field(description="The client's Idempotency-Key, if it sent one (printable ASCII, no spaces, up to 200)."),
]
