"""What the browser tests share: the page helpers (photos picked, images loaded, the API as the
page's user) and the recorder of what the history shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image
from playwright.sync_api import expect

JOB_TIMEOUT_MS = 60_000
FEW_STEPS = 4

# Records every state the history and the upload bars show, as they show it (each WebSocket
# message is its own task, so each rendered state reaches the observer).
RECORDER = """
() => {
  window.__sameDocument = true;
  const seen = window.__seen = { statuses: {}, steps: [], uploads: [] };
  const push = (arr, v) => { if (v && arr[arr.length - 1] !== v) arr.push(v); };
  const scan = () => {
    document.querySelectorAll('#history-list > li').forEach((li) => {
      push(seen.statuses[li.dataset.id] = seen.statuses[li.dataset.id] || [], li.dataset.status);
    });
    document.querySelectorAll('#history-list .tryon-step').forEach((e) => push(seen.steps, e.textContent));
    document.querySelectorAll('[data-progress-text]').forEach((e) => push(seen.uploads, e.textContent));
  };
  new MutationObserver(scan).observe(document.body,
    { subtree: true, childList: true, characterData: true, attributes: true });
  scan();
}
"""


def loaded(page: Any, img: Any) -> bool:
    """Wait until the <img> has really decoded a picture (not a broken link)."""
    page.wait_for_function(
        "(el) => el.complete && el.naturalWidth > 0", arg=img.element_handle(), timeout=JOB_TIMEOUT_MS
    )
    return True


def pick_photos(page: Any, photos: dict[str, Path], steps: int | None = FEW_STEPS) -> None:
    """Choose both photos (and few steps: the smoke model takes a while per step on a CPU)."""
    page.get_by_label("Person photo").set_input_files(photos["person"])
    page.get_by_label("Garment photo").set_input_files(photos["garment"])
    for role in ("person", "garment"):
        preview = page.locator(f'[data-preview="{role}"]')
        expect(preview).to_contain_text(photos[role].name)
        if photos[role].suffix in (".jpg", ".avif"):  # Chromium draws these itself
            assert loaded(page, preview.locator("img"))
        else:
            expect(preview).to_contain_text("No preview in this browser")
    if steps is not None:
        page.locator("details.advanced").evaluate("(d) => { d.open = true; }")
        page.get_by_label("Steps", exact=True).fill(str(steps))


def api_json(context: Any, base: str, method: str, path: str, **kwargs: Any) -> Any:
    """Call the gateway with the context's own cookie (what the page itself would send)."""
    response = context.request.fetch(base + path, method=method, **kwargs)
    assert response.ok, f"{method} {path}: {response.status} {response.text()}"
    return response.json() if response.status != 204 else None


def health(context: Any, base: str) -> dict[str, Any]:
    return api_json(context, base, "GET", "/health")


def solid_jpeg(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (96, 128)) -> Path:
    """A one-colour JPEG: (20, 40, 200) is the blue garment the smoke tailor model parses as "lower"."""
    Image.new("RGB", size, color).save(path, "JPEG", quality=95)
    return path


def upload_bytes(context: Any, base: str, name: str, content_type: str, data: bytes) -> str:
    """Upload `data` as the context's user does (presigned PUT or POST); returns the storage key."""
    signed = api_json(
        context,
        base,
        "POST",
        "/images/presignedUploadUrl",
        data={"fileName": name, "fileType": content_type, "fileSize": len(data)},
    )
    if (signed.get("method") or "PUT").upper() == "POST":
        fields = {**signed.get("fields", {}), "file": {"name": name, "mimeType": content_type, "buffer": data}}
        sent = context.request.post(signed["url"], multipart=fields)
    else:
        sent = context.request.put(signed["url"], headers=signed.get("headers") or {}, data=data)
    assert sent.ok, f"upload of {name}: {sent.status} {sent.text()}"
    return signed["key"]
