"""The web page (gateway/static/) in Debian's Chromium against the real stack on the smoke model.

Each test is one person's story, driven through the page as a person would drive it; the
server is only asked directly to check what the page claims (that a deleted try-on is gone,
that another person sees nothing) or, in the reconnect test, to finish a job while the page
is offline. Screenshots land in test-artifacts/ (git-ignored).
"""

from __future__ import annotations

import base64
import io
import re
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.browser.conftest import PHONE, make_jpeg

pytestmark = [pytest.mark.browser, pytest.mark.slow]

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


def test_try_on_appears_live_opens_downloads_retries_and_deletes(new_session, photos) -> None:
    s = new_session()
    page = s.page
    s.open("/")
    banner = page.locator("#smoke-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Results come from a test model (smoke mode)")

    s.signup("Ada")
    expect(page.locator("#live-status")).to_have_text("Live updates on")
    expect(page.locator("#history-empty")).to_be_visible()
    page.evaluate(RECORDER)

    pick_photos(page, photos, steps=None)
    page.get_by_label("Upper body").check()
    page.locator("summary", has_text="Advanced").click()
    page.get_by_label("Steps", exact=True).fill("6")
    page.get_by_label("Seed", exact=True).fill("1234")
    with page.expect_request("**/jobs/weaver") as first_job:
        page.get_by_role("button", name="Start try-on").click()
    body = first_job.value.post_data_json
    assert body["steps"] == 6 and body["seed"] == 1234 and body["category"] == "upper", body
    first_key = first_job.value.headers.get("idempotency-key")
    assert first_key

    card = page.locator("#history-list > li")
    expect(card).to_have_count(1)
    expect(card).to_have_attribute("data-status", "done", timeout=JOB_TIMEOUT_MS)
    result = card.locator(".tryon-open img")
    assert loaded(page, result)
    first_src = result.get_attribute("src")
    vton_id = card.get_attribute("data-id")

    seen = page.evaluate("window.__seen")
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded"
    assert "Uploaded" in seen["uploads"], seen["uploads"]
    statuses = seen["statuses"][vton_id]
    assert statuses[-1] == "done" and statuses.index("done") > 0, statuses
    assert {"queued", "processing"} & set(statuses[:-1]), statuses
    # the progress bar said step k of the 6 steps asked for, before the result came
    assert any(re.fullmatch(r"Step \d+ of 6", t) for t in seen["steps"]), seen["steps"]
    s.screenshot("webapp-history-desktop.png")

    # "Try again": the same try-on re-runs with a new random seed and a new Idempotency-Key
    with page.expect_request("**/jobs/weaver") as again:
        card.get_by_role("button", name="Try again").click()
    retry = again.value.post_data_json
    assert retry["vton_id"] == vton_id and isinstance(retry["seed"], int) and retry["seed"] != 1234, retry
    assert retry["steps"] == 6 and retry["category"] == "upper", retry  # the same settings
    assert again.value.headers.get("idempotency-key") not in (None, first_key)
    # the card went back to work and then showed a new result (a new job: a new picture)
    page.wait_for_function(
        "([id, n]) => { const s = window.__seen.statuses[id]; return s.length > n && s[s.length - 1] === 'done'; }",
        arg=[vton_id, len(statuses)],
        timeout=JOB_TIMEOUT_MS,
    )
    assert "queued" in page.evaluate("window.__seen")["statuses"][vton_id][len(statuses) :]
    expect(result).not_to_have_attribute("src", first_src or "")
    assert loaded(page, result)

    # open it full size, download it
    card.get_by_role("button", name="Open the result full size").click()
    dialog = page.get_by_role("dialog", name="Try-on result")
    expect(dialog).to_be_visible()
    assert loaded(page, page.locator("#result-image"))
    s.screenshot("webapp-result-dialog-desktop.png", full_page=False)
    with page.expect_download() as download:
        dialog.get_by_role("link", name="Download").click()
    assert download.value.suggested_filename.endswith(".png"), download.value.suggested_filename
    assert Path(download.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # delete it (asks first)
    dialog.get_by_role("button", name="Delete", exact=True).click()
    confirm = page.get_by_role("dialog", name="Delete this try-on?")
    expect(confirm).to_be_visible()
    confirm.get_by_role("button", name="Delete").click()
    expect(dialog).to_be_hidden()
    expect(card).to_have_count(0)
    expect(page.locator("#history-empty")).to_be_visible()
    assert api_json(s.context, s.base_url, "GET", "/vton") == []
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded"


def test_phone_layout_heic_avif_and_another_person_sees_nothing(new_session, tmp_path: Path) -> None:
    # an AVIF person and a HEIC garment: the server converts both (Chromium previews only AVIF)
    import pillow_heif

    pillow_heif.register_heif_opener()
    make_jpeg(tmp_path / "p.jpg", "person")
    make_jpeg(tmp_path / "g.jpg", "garment")
    Image.open(tmp_path / "p.jpg").save(tmp_path / "person.avif", format="AVIF")
    Image.open(tmp_path / "g.jpg").save(tmp_path / "garment.heic", format="HEIF")
    photos = {"person": tmp_path / "person.avif", "garment": tmp_path / "garment.heic"}

    ada = new_session(viewport=PHONE, is_mobile=True, has_touch=True)
    page = ada.page
    ada.open("/")
    ada_email, ada_password = ada.signup("Ada")
    pick_photos(page, photos, steps=None)
    page.get_by_label("Fast (20 steps)").check()  # the quality preset
    with page.expect_response("**/jobs/weaver") as started:
        page.get_by_role("button", name="Start try-on").click()
    assert started.value.request.post_data_json["preset"] == "fast"
    card = page.locator("#history-list > li")
    expect(card).to_have_attribute("data-status", "done", timeout=JOB_TIMEOUT_MS)
    assert loaded(page, card.locator(".tryon-open img"))
    ada_vton = card.get_attribute("data-id")
    job = api_json(ada.context, ada.base_url, "GET", f"/jobs/{started.value.json()['job_id']}")
    assert (job["status"], job["steps"]) == ("succeeded", 20), job
    # nothing sticks out sideways on a phone
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    ada.screenshot("webapp-history-phone.png")

    # Bob, in his own browser context, sees none of it, and can't delete it
    bob = new_session()
    bob.open("/")
    bob_email, bob_password = bob.signup("Bob")
    expect(bob.page.locator("#live-status")).to_have_text("Live updates on")
    expect(bob.page.locator("#history-empty")).to_be_visible()
    expect(bob.page.locator("#history-list > li")).to_have_count(0)
    assert api_json(bob.context, bob.base_url, "GET", "/vton") == []
    gone = bob.context.request.delete(f"{bob.base_url}/vton/{ada_vton}")
    assert gone.status == 404, gone.status

    # Bob deletes his account (with a confirm step); he can't log in any more
    bob.page.get_by_role("link", name="Account").click()
    expect(bob.page.locator("#account-email")).to_have_text(bob_email)
    bob.page.get_by_role("button", name="Delete my account…").click()
    confirm = bob.page.get_by_role("dialog", name="Delete your account?")
    confirm.get_by_role("button", name="Cancel").click()
    expect(confirm).to_be_hidden()
    expect(bob.page.get_by_role("heading", name="Account", exact=True)).to_be_visible()
    bob.page.get_by_role("button", name="Delete my account…").click()
    confirm.get_by_role("button", name="Delete account").click()
    expect(bob.page.get_by_role("heading", name="Create an account")).to_be_visible()
    expect(bob.page.locator("#auth-notice")).to_contain_text("deleted")
    bob.page.get_by_role("link", name="Log in").click()
    bob.page.locator("#login-email").fill(bob_email)
    bob.page.locator("#login-password").fill(bob_password)
    bob.page.get_by_role("button", name="Log in").click()
    expect(bob.page.locator("#login-error")).to_have_text("Wrong email or password.")

    # Ada logs out and back in: her try-on is still there
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    assert page.context.request.get(f"{ada.base_url}/user").status == 401
    page.locator("#login-email").fill(ada_email)
    page.locator("#login-password").fill(ada_password)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(f'#history-list > li[data-id="{ada_vton}"]')).to_have_attribute("data-status", "done")
    expect(page.locator(".preview img")).to_have_count(0)  # the form was emptied at log-out


def test_pickers_say_what_is_wrong_in_plain_words(new_session, photos, tmp_path: Path) -> None:
    s = new_session()
    page = s.page
    s.open("/")
    s.signup("Cleo")
    max_bytes = (health(s.context, s.base_url).get("limits") or {}).get("max_upload_bytes") or 20 * 1024 * 1024
    max_mb = f"{round(max_bytes / (1024 * 1024), 1):g}"

    # every control has a name, and Tab goes from the heading to the two pickers, visibly
    unnamed = page.evaluate("""() => [...document.querySelectorAll('input, button, select, textarea, a[href]')]
        .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
        .map((e) => e.outerHTML)""")
    assert unnamed == []
    page.get_by_role("heading", name="New try-on").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "person-file"
    outline = page.evaluate("getComputedStyle(document.querySelector('[data-drop=person]')).outlineStyle")
    assert outline == "solid", outline
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "garment-file"

    # a photo dropped on a picker is picked, like a chosen one
    png = io.BytesIO()
    Image.open(photos["garment"]).save(png, "PNG")
    page.locator('[data-drop="garment"]').evaluate(
        """(zone, b64) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
            zone.dispatchEvent(new DragEvent("dragover", { dataTransfer: dt, bubbles: true, cancelable: true }));
            zone.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
        }""",
        base64.b64encode(png.getvalue()).decode(),
    )
    expect(page.locator('[data-preview="garment"]')).to_contain_text("dropped.png")
    assert loaded(page, page.locator('[data-preview="garment"] img'))
    assert page.evaluate("document.querySelector('#garment-file').files[0].name") == "dropped.png"

    uploads: list[str] = []
    page.on("request", lambda r: uploads.append(r.url) if "presignedUploadUrl" in r.url else None)

    huge = tmp_path / "huge.jpg"
    with huge.open("wb") as f:
        f.truncate(max_bytes + 1)
    page.get_by_label("Person photo").set_input_files(huge)
    expect(page.locator("#person-error")).to_contain_text(f"File too big (max {max_mb} MB)")
    expect(page.get_by_label("Person photo")).to_have_attribute("aria-invalid", "true")

    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo")
    page.get_by_label("Garment photo").set_input_files(notes)
    expect(page.locator("#garment-error")).to_contain_text("Not an image we can read")

    page.get_by_role("button", name="Start try-on").click()
    expect(page.locator("#person-error")).to_be_visible()
    assert uploads == [], "a refused file was uploaded"

    # a good file clears the error; a HEIC photo is accepted and shown as a named placeholder
    page.get_by_label("Person photo").set_input_files(photos["person"])
    expect(page.locator("#person-error")).to_be_hidden()
    heic = tmp_path / "holiday.heic"
    heic.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00heicmif1" + b"\x00" * 64)
    page.get_by_label("Garment photo").set_input_files(heic)
    expect(page.locator("#garment-error")).to_be_hidden()
    expect(page.locator('[data-preview="garment"]')).to_contain_text("holiday.heic")
    expect(page.locator('[data-preview="garment"]')).to_contain_text("No preview in this browser")

    # bytes that only claim to be a JPEG pass the picker; the model refuses them, and the
    # try-on's card says so in plain words
    fake = tmp_path / "broken.jpg"
    fake.write_bytes(b"this is not really a jpeg" * 40)
    page.get_by_label("Garment photo").set_input_files(fake)
    expect(page.locator("#garment-error")).to_be_hidden()
    page.locator("details.advanced").evaluate("(d) => { d.open = true; }")
    page.get_by_label("Steps", exact=True).fill(str(FEW_STEPS))
    page.get_by_role("button", name="Start try-on").click()
    card = page.locator("#history-list > li")
    expect(card).to_have_attribute("data-status", "failed", timeout=JOB_TIMEOUT_MS)
    expect(card.locator(".tryon-error")).to_have_text(
        "The garment photo is not an image we can read. Choose another photo and try again."
    )
    expect(card.get_by_role("button", name="Try again")).to_be_visible()
    s.screenshot("webapp-errors-desktop.png")

    # the server's refusals, in plain words at the picker: rate limited, too big
    answers = iter([(429, "rate_limited"), (413, "too_large")])

    def refuse(route: Any) -> None:
        status, code = next(answers)
        route.fulfill(status=status, json={"error": code, "message": code, "code": code, "field": None})

    page.route("**/images/presignedUploadUrl", refuse)
    other = tmp_path / "other.jpg"
    make_jpeg(other, "person")
    page.get_by_label("Person photo").set_input_files(other)
    page.get_by_role("button", name="Start try-on").click()
    expect(page.locator("#person-error")).to_have_text("Too many requests, try again in a moment.")
    page.get_by_role("button", name="Start try-on").click()
    expect(page.locator("#person-error")).to_have_text(f"File too big (max {max_mb} MB).")
    page.unroute("**/images/presignedUploadUrl")
    expect(card).to_have_count(1)  # neither started a try-on

    # a session that ended (the cookie is gone) sends the page to the login form
    s.context.clear_cookies()
    card.get_by_role("button", name="Try again").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.locator("#auth-notice")).to_have_text("Your session ended. Please log in again.")


def test_reconnects_after_the_network_drops_and_catches_up(new_session, photos) -> None:
    s = new_session()
    page = s.page
    sockets: list[str] = []

    def on_socket(ws: Any) -> None:
        sockets.append(ws.url)
        if len(sockets) == 1:
            ws.close(code=4401, reason="Unauthorized")  # as the gateway does with a bad ws-token
        else:
            ws.connect_to_server()

    page.route_web_socket(re.compile(r"/ws\?"), on_socket)
    token_requests: list[str] = []
    page.on("request", lambda r: token_requests.append(r.url) if r.url.endswith("/user/ws-token") else None)
    s.open("/")
    s.signup("Dan")
    expect(page.locator("#live-status")).to_have_text("Live updates on")
    # after the 4401 the page asked for a new ws-token at once and got through with it
    assert len(sockets) == 2 and len(token_requests) == 2, (sockets, token_requests)
    page.evaluate(RECORDER)
    pick_photos(page, photos)
    page.get_by_role("button", name="Start try-on").click()
    first = page.locator("#history-list > li").first
    expect(first).to_have_attribute("data-status", "done", timeout=JOB_TIMEOUT_MS)
    last_event_id = page.evaluate("window.proteus.lastEventId")
    assert last_event_id, "no event id was seen on the socket"

    opened = len(sockets)
    s.context.set_offline(True)
    expect(page.locator("#live-status")).not_to_have_attribute("data-state", "open")
    expect(page.locator("#live-status")).not_to_have_text("Live updates on")

    # While the page is offline, a new try-on runs to the end on the server.
    row = api_json(s.context, s.base_url, "GET", "/vton")[0]
    created = api_json(
        s.context,
        s.base_url,
        "POST",
        "/vton",
        data={"user_snap": row["user_snap"], "uncleaned_outfit": row["uncleaned_outfit"]},
    )
    api_json(
        s.context,
        s.base_url,
        "POST",
        "/jobs/weaver",
        headers={"Idempotency-Key": str(uuid.uuid4())},
        data={
            "vton_id": created["id"],
            "user_snap_s3": row["user_snap"],
            "uncleaned_outfit_s3": row["uncleaned_outfit"],
            "seed": 7,
            "steps": FEW_STEPS,
        },
    )
    deadline = time.monotonic() + JOB_TIMEOUT_MS / 1000
    while True:
        rows = {r["id"]: r for r in api_json(s.context, s.base_url, "GET", "/vton")}
        if rows[created["id"]]["status"] in ("done", "failed"):
            break
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.2)
    assert rows[created["id"]]["status"] == "done", rows[created["id"]]
    new_card = page.locator(f'#history-list > li[data-id="{created["id"]}"]')
    expect(new_card).to_have_count(0)  # the page could not have heard of it

    s.context.set_offline(False)
    expect(page.locator("#live-status")).to_have_text("Live updates on", timeout=20_000)
    expect(new_card).to_have_attribute("data-status", "done", timeout=20_000)
    assert loaded(page, new_card.locator(".tryon-open img"))
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded"
    reconnects = [parse_qs(urlsplit(url).query) for url in sockets[opened:]]
    assert reconnects, "the page never opened a new socket"
    assert reconnects[-1].get("last_event_id") == [last_event_id], sockets


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


def test_tailor_cut_out_detected_category_area_to_repaint_and_mask_variant(new_session, tmp_path: Path) -> None:
    photos = {
        "person": make_jpeg(tmp_path / "person.jpg", "person"),
        "garment": solid_jpeg(tmp_path / "blue-garment.jpg", (20, 40, 200)),
    }
    s = new_session()
    page = s.page
    s.open("/")
    s.signup("Tess")
    expect(page.locator("#live-status")).to_have_text("Live updates on")
    page.evaluate(RECORDER)

    # Auto (the default) with the default variant: tailor cuts the garment out and finds its category
    pick_photos(page, photos)
    expect(page.get_by_label("Auto")).to_be_checked()
    expect(page.get_by_label("Mask-free (default)")).to_be_checked()
    with page.expect_request("**/jobs/weaver") as first_job:
        page.get_by_role("button", name="Start try-on").click()
    body = first_job.value.post_data_json
    assert body.get("category", "auto") == "auto" and "variant" not in body, body

    card = page.locator("#history-list > li").first
    expect(card).to_have_attribute("data-status", "done", timeout=JOB_TIMEOUT_MS)
    auto_id = card.get_attribute("data-id")
    row = next(r for r in api_json(s.context, s.base_url, "GET", "/vton") if r["id"] == auto_id)
    assert row["category"] == "lower" and row["cleaned_outfit"] and not row["person_mask"], row
    expect(card.locator(".tryon-category")).to_have_text("Category: lower body (detected)")
    card.scroll_into_view_if_needed()  # the thumbnails load once the card is (nearly) in view
    cutout = card.get_by_role("figure", name="Garment cut-out")
    expect(cutout).to_be_visible()
    cutout_img = cutout.get_by_role("img")
    expect(cutout_img).to_have_attribute("alt", re.compile(r"^The garment cut out of its photo"))
    assert loaded(page, cutout_img)
    # what the page shows is tailor's cut-out: a PNG with transparency
    shown = s.context.request.get(cutout_img.get_attribute("src"))
    assert shown.ok and Image.open(io.BytesIO(shown.body())).mode == "RGBA"
    expect(card.get_by_role("figure", name="Area to repaint")).to_have_count(0)  # no mask: none shown
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded"

    # the result dialog shows the cut-out and the category too
    card.get_by_role("button", name="Open the result full size").click()
    dialog = page.get_by_role("dialog", name="Try-on result")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#result-category")).to_have_text("Category: lower body (detected)")
    assert loaded(page, dialog.get_by_role("figure", name="Garment cut-out").get_by_role("img"))
    assert loaded(page, page.locator("#result-image"))
    dialog.get_by_role("button", name="Close").first.click()
    expect(dialog).to_be_hidden()

    # Mask-based: tailor must find the area to repaint on the person photo, which the smoke
    # model does not manage; the card says why in plain words, and "Try again" keeps the variant
    page.get_by_label("Lower body").check()
    page.get_by_label("Mask-based (finds the area to repaint first)").check()
    with page.expect_request("**/jobs/weaver") as mask_job:
        page.get_by_role("button", name="Start try-on").click()
    body = mask_job.value.post_data_json
    assert body["variant"] == "mask" and body["category"] == "lower", body
    expect(page.locator("#history-list > li")).to_have_count(2)
    mask_card = page.locator("#history-list > li").first
    mask_id = mask_card.get_attribute("data-id")
    assert mask_id != auto_id
    expect(mask_card).to_have_attribute("data-status", "failed", timeout=JOB_TIMEOUT_MS)
    row = next(r for r in api_json(s.context, s.base_url, "GET", "/vton") if r["id"] == mask_id)
    reason = (row["error"] or "").strip()
    assert reason and not row["outfit_try_on"] and not row["person_mask"], row
    # tailor's reason is a sentence for a person, not a stack trace or an exception's repr
    assert reason[0].isupper() and not re.search(r"Traceback|Exception|Error\b|\w+\(|[{}<>]", reason), reason
    expect(mask_card.locator(".tryon-error")).to_have_text(f"The model failed: {reason}")
    expect(mask_card.locator(".badge")).to_have_text("Failed")
    expect(mask_card.locator(".tryon-media")).to_contain_text("No result")
    statuses = page.evaluate("window.__seen")["statuses"][mask_id]
    assert statuses[-1] == "failed" and len(statuses) > 1, statuses  # it changed live, not on a reload
    with page.expect_request("**/jobs/weaver") as again:
        mask_card.get_by_role("button", name="Try again").click()
    retry = again.value.post_data_json
    assert retry["vton_id"] == mask_id and retry["variant"] == "mask" and retry["category"] == "lower", retry
    page.wait_for_function(
        "([id, n]) => { const s = window.__seen.statuses[id]; return s.length > n && s[s.length - 1] === 'failed'; }",
        arg=[mask_id, len(statuses)],
        timeout=JOB_TIMEOUT_MS,
    )
    expect(mask_card.locator(".tryon-error")).to_have_text(f"The model failed: {reason}")

    # "Area to repaint": the smoke model never makes a person mask, so the list the page reads
    # is given one (an L PNG this user uploaded, 255 over the shirt of the person photo). The
    # reload also shows that "(detected)" outlives it (the page remembers what it asked for).
    w, h = 240, 320
    box = (int(w * 0.3), int(h * 0.26), int(w * 0.7), int(h * 0.62))
    mask = Image.new("L", (w, h), 0)
    mask.paste(255, box)
    buf = io.BytesIO()
    mask.save(buf, "PNG")
    mask_key = upload_bytes(s.context, s.base_url, "mask.png", "image/png", buf.getvalue())

    def with_mask(route: Any) -> None:
        response = route.fetch()
        rows = response.json()
        for r in rows:
            if r["id"] == auto_id:
                r["person_mask"] = mask_key
        route.fulfill(response=response, json=rows)

    page.route(re.compile(r"/vton\?"), with_mask)
    page.reload()
    card = page.locator(f'#history-list > li[data-id="{auto_id}"]')
    expect(card).to_have_attribute("data-status", "done")
    expect(card.locator(".tryon-category")).to_have_text("Category: lower body (detected)")
    area = card.get_by_role("figure", name="Area to repaint").locator("canvas")
    expect(area).to_have_attribute("aria-label", re.compile(r"area the model repaints tinted"))
    page.wait_for_function(
        "(c) => c.width === 240 && c.height === 320", arg=area.element_handle(), timeout=JOB_TIMEOUT_MS
    )
    inside = (w // 2, (box[1] + box[3]) // 2)  # the shirt (60, 90, 160), in the mask
    outside = (10, 10)  # the background (236, 232, 224), outside it
    (r_in, g_in, b_in), (r_out, g_out, b_out) = area.evaluate(
        "(c, points) => { const x = c.getContext('2d');"
        " return points.map(([a, b]) => [...x.getImageData(a, b, 1, 1).data.slice(0, 3)]); }",
        [inside, outside],
    )
    # person * 0.45 + pink (255, 0, 150) * 0.55 inside; the photo as it is outside
    assert r_in > 140 and g_in < 70 and abs(r_in - 167) < 25 and abs(b_in - 155) < 25, (r_in, g_in, b_in)
    assert max(abs(r_out - 236), abs(g_out - 232), abs(b_out - 224)) < 12, (r_out, g_out, b_out)
    assert loaded(page, card.get_by_role("figure", name="Garment cut-out").get_by_role("img"))
    s.screenshot("webapp-tailor-desktop.png")

    # both in the dialog, and nothing sticks out sideways on a phone
    card.get_by_role("button", name="Open the result full size").click()
    expect(dialog.get_by_role("figure", name="Area to repaint")).to_be_visible()
    page.wait_for_function("(c) => c.width > 1", arg=dialog.locator("canvas").element_handle())
    assert loaded(page, dialog.get_by_role("figure", name="Garment cut-out").get_by_role("img"))
    s.screenshot("webapp-tailor-dialog-desktop.png", full_page=False)
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    s.screenshot("webapp-tailor-dialog-phone.png", full_page=False)
    dialog.get_by_role("button", name="Close").first.click()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    s.screenshot("webapp-tailor-phone.png")


def test_advanced_offers_fashn_and_the_card_names_model_and_seed(new_session, tmp_path: Path) -> None:
    """Choosing FASHN VTON in Advanced sends its model and options; the finished card shows the
    model and the seed."""
    photos = {
        "person": make_jpeg(tmp_path / "person.jpg", "person"),
        "garment": solid_jpeg(tmp_path / "blue-garment.jpg", (20, 40, 200)),
    }
    s = new_session()
    page = s.page
    s.open("/")
    s.signup("Fay")
    page.get_by_label("Upper body").check()
    pick_photos(page, photos, steps=None)
    if not page.locator("#opt-seed").is_visible():
        page.locator("summary", has_text="Advanced").click()
    expect(page.locator("#fashn-options")).to_be_hidden()
    page.get_by_label("FASHN VTON 1.5 (Apache-2.0, 30 steps)").check()
    expect(page.locator("#fashn-options")).to_be_visible()
    page.locator("#opt-photo-type").select_option("flat-lay")
    page.locator("#opt-seed").fill("42")
    page.locator("#opt-steps").fill("2")
    with page.expect_request("**/jobs/weaver") as job:
        page.get_by_role("button", name="Start try-on").click()
    body = job.value.post_data_json
    assert body["model"] == "fashn-vton-1.5" and body["garment_photo_type"] == "flat-lay", body
    assert body["segmentation_free"] is True and body["seed"] == 42
    card = page.locator("#history-list > li").first
    expect(card).to_have_attribute("data-status", "done", timeout=JOB_TIMEOUT_MS)
    expect(card.locator(".tryon-run")).to_contain_text("fashn-vton-1.5 · seed 42", timeout=10_000)
