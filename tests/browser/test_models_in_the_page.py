"""The web page's model choices in Chromium against the real stack: tailor's cut-out, the
detected category and the area to repaint with the mask variant, and FASHN VTON with its model
and seed on the card."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.browser.conftest import PHONE, make_jpeg
from tests.browser.pages import JOB_TIMEOUT_MS, RECORDER, api_json, loaded, pick_photos, solid_jpeg, upload_bytes

pytestmark = [pytest.mark.browser, pytest.mark.slow]


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
