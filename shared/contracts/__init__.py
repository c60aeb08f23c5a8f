"""Every contract of Proteus, written once as a pydantic model.

- `tryon`: each limit, default and enum of a try-on (steps, guidance, seed, sizes, presets),
  and `TryOnOptions`, the settings a request may leave out.
- `fields`: the shared field types (ids, storage keys, categories, codes, messages).
- `events`: the data of each CloudEvent type (`EVENT_MODELS`), one module per concern.
- `rest`: the gateway's REST request bodies (`REQUEST_MODELS`).
- `responses`: its answers and WebSocket messages (`RESPONSE_MODELS`).
- `v1`: the public API's bodies (FASHN-compatible /v1 run, status, cancel, keys, webhooks).
- `generate`: writes cloudevents-schemas/*.json and docs/openapi.json from the models
  (`make schemas`; a test fails when the committed files differ).
"""
