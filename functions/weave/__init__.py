"""The weave stage's model: CatVTON virtual try-on (see functions/weave/pipeline.py).

Public names (imported lazily, so `python -m functions.weave.download` stays light):
`CatVTONPipeline`, `TryOnRequest`, `TryOnResult`, `PipelineOptions`, `run_requests`,
`WeaveModelConfig`, `load_pipeline`, `load_pipelines`, `resolve_model`, `write_smoke_model`.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "CatVTONPipeline": "pipeline",
    "TryOnRequest": "request",
    "TryOnResult": "pipeline_common",
    "PipelineOptions": "pipeline_common",
    "run_requests": "request",
    "WeaveModelConfig": "loading",
    "load_pipeline": "loading",
    "load_pipelines": "loading",
    "resolve_model": "loading",
    "write_smoke_model": "smoke",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
