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
from tests.browser.pages import FEW_STEPS, JOB_TIMEOUT_MS, RECORDER, api_json, health, loaded, pick_photos

pytestmark = [pytest.mark.browser, pytest.mark.slow]


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
