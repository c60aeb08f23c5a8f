"""Generate cloudevents-schemas/*.json and the OpenAPI components from the contract models.

    python -m shared.contracts.generate          # write the event schemas (`make schemas`)
    python -m shared.contracts.generate --check  # exit 1 naming each file that differs

The gateway writes docs/openapi.json the same way (`python -m gateway.openapi`, also run by
`make schemas`). A test runs both checks, so a committed file can never drift from its model.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Final

from pydantic import AliasChoices, BaseModel
from pydantic.json_schema import models_json_schema

from shared.contracts.events import EVENT_MODELS
from shared.contracts.examples import EXAMPLES
from shared.contracts.fields import DEF_MARKER, SHARED_DEFS

ROOT: Final = Path(__file__).resolve().parents[2]
SCHEMA_DIR: Final = ROOT / "cloudevents-schemas"
DRAFT: Final = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID: Final = "https://proteus.dev/cloudevents-schemas/{}.json"
# Keys a model's json_schema_extra may add at the top level of an event schema.
_COMBINATORS: Final = ("anyOf", "allOf", "if", "then", "else")


def event_schema(event_type: str) -> dict[str, Any]:
    """The JSON Schema of one event type's data, as written to cloudevents-schemas/<type>.json."""
    model = EVENT_MODELS[event_type]
    raw = model.model_json_schema(mode="validation")
    local = raw.pop("$defs", {})
    body = _clean(_inline(raw, local), shared_as="ref")
    schema: dict[str, Any] = {
        "$schema": DRAFT,
        "$id": SCHEMA_ID.format(event_type),
        "title": event_type,
        "description": model.description,
        "type": "object",
        "properties": body["properties"],
        "required": body.get("required", []),
        "additionalProperties": False,
    }
    schema.update({key: body[key] for key in _COMBINATORS if key in body})
    schema["examples"] = EXAMPLES[event_type]
    schema["$defs"] = copy.deepcopy(SHARED_DEFS)
    return schema


def openapi_components(models: Iterable[type[BaseModel]]) -> dict[str, Any]:
    """`components.schemas` for these models (legacy spellings listed next to each field)."""
    models = list(models)
    _, top = models_json_schema([(m, "validation") for m in models], ref_template="#/components/schemas/{model}")
    schemas = {name: _clean(schema, shared_as="inline") for name, schema in top.get("$defs", {}).items()}
    for model in models:
        _add_aliases(model, schemas[model.__name__])
    return schemas


def _add_aliases(model: type[BaseModel], schema: dict[str, Any]) -> None:
    """List every spelling of an aliased field; a required one needs any of them."""
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    rules = []
    for name, field in model.model_fields.items():
        alias = field.validation_alias
        if not isinstance(alias, AliasChoices):
            continue
        names = [str(choice) for choice in alias.choices]
        documented = names[0] if names[0] in properties else name
        for other in names[1:]:
            properties[other] = dict(properties[documented], description=f"Accepted for {documented}.")
        if documented in required:
            required.remove(documented)
            rules.append({"anyOf": [{"required": [n]} for n in names]})
    if rules:
        schema["allOf"] = rules
    if "required" in schema and not schema["required"]:
        del schema["required"]


def _inline(node: Any, local: dict[str, Any]) -> Any:
    """Replace `$ref`s to the model's own `$defs` (nested models) by their content."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            target = _inline(local[ref.removeprefix("#/$defs/")], local)
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return {**{k: v for k, v in target.items() if k != "title"}, **_inline(rest, local)}
        return {key: _inline(value, local) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(item, local) for item in node]
    return node


def _clean(node: Any, *, shared_as: str) -> Any:
    """Titles and null defaults out; the shared field markers as `$ref`s or inlined."""
    if isinstance(node, list):
        return [_clean(item, shared_as=shared_as) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    if DEF_MARKER in node:
        name = node[DEF_MARKER]
        if shared_as == "ref":
            out["$ref"] = f"#/$defs/{name}"
        else:
            out.update({k: v for k, v in SHARED_DEFS[name].items() if k != "description"})
    for key, value in node.items():
        if key == DEF_MARKER or key == "title" and isinstance(value, str) or key == "default" and value is None:
            continue
        if key == "properties":
            out[key] = {name: _clean(prop, shared_as=shared_as) for name, prop in value.items()}
        else:
            out[key] = _clean(value, shared_as=shared_as)
    return out


def dump(document: Any) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def expected_files() -> dict[Path, str]:
    """Every generated event schema and the text it must have."""
    return {SCHEMA_DIR / f"{event_type}.json": dump(event_schema(event_type)) for event_type in EVENT_MODELS}


def stale_files(files: dict[Path, str] | None = None) -> list[Path]:
    """The generated files whose committed content differs from what the models give."""
    files = expected_files() if files is None else files
    return [
        path for path, text in files.items() if not path.exists() or json.loads(path.read_text()) != json.loads(text)
    ]


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv: list[str] | None = None, files: Callable[[], dict[Path, str]] | None = None) -> int:
    """Write (or with --check, compare) the files `files()` gives (default: the event schemas)."""
    files = files or (lambda: expected_files())
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report files that differ (exit 1)")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(files())
        for path in stale:
            print(f"{_shown(path)} differs from its model: run `make schemas`", file=sys.stderr)
        return 1 if stale else 0
    for path, text in files().items():
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {_shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
