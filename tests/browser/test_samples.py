"""The web page shows every sample of a try-on, and takes its limits from the server's contract.

A try-on asked for with several samples (Advanced → Samples) shows each one on its card as it
completes (the completion push lists them all) and again after a reload (GET /vton's
result_keys); each opens full size and downloads on its own. The form's limits and category
choices are the ones /openapi.json publishes (generated from shared/contracts).
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect

from tests.browser.pages import FEW_STEPS, JOB_TIMEOUT_MS, api_json, loaded, pick_photos


def test_the_form_takes_its_limits_and_categories_from_the_openapi_document(new_session) -> None:
    s = new_session()
    page = s.page
    s.open("/")
    s.signup("Lim")
    document = api_json(s.context, s.base_url, "GET", "/openapi.json")
    job = document["components"]["schemas"]
    fields = job["WeaveJobRequest"]["properties"]
    category = job["TryOnCreate"]["properties"]["category"]

    chips = page.locator('#category-chips input[name="category"]')
    expect(chips).to_have_count(len(category["enum"]))
    assert sorted(chips.evaluate_all("(inputs) => inputs.map((i) => i.value)")) == sorted(category["enum"])
    expect(page.locator(f'#category-chips input[value="{category["default"]}"]')).to_be_checked()
    for name, selector in (("steps", "#opt-steps"), ("seed", "#opt-seed"), ("num_samples", "#opt-samples")):
        expect(page.locator(selector)).to_have_attribute("min", str(fields[name]["minimum"]))
        expect(page.locator(selector)).to_have_attribute("max", str(fields[name]["maximum"]))

    # Quality says how many steps each preset runs with the chosen model, in the server's numbers
    models = document["x-models"]
    catvton = models["models"][models["variants"]["maskfree"]]["presets"]
    fashn = models["models"]["fashn-vton-1.5"]["presets"]
    expect(page.locator("fieldset.presets")).to_contain_text(f"Best ({catvton['default']} steps)")
    expect(page.locator("fieldset.presets")).to_contain_text(f"Fast ({catvton['fast']} steps)")
    page.locator("details.advanced").evaluate("(d) => { d.open = true; }")
    page.get_by_label(f"FASHN VTON 1.5 (Apache-2.0, {fashn['default']} steps)").check()
    expect(page.locator("fieldset.presets")).to_contain_text(f"Best ({fashn['default']} steps)")
    page.get_by_label("Mask-free (default)").check()

    # one past the server's limit is refused in the page, in the server's numbers
    low, high = fields["num_samples"]["minimum"], fields["num_samples"]["maximum"]
    page.get_by_label("Samples", exact=True).fill(str(high + 1))
    page.get_by_role("button", name="Start try-on").click()
    expect(page.locator("#opt-samples-error")).to_have_text(f"Enter a whole number from {low} to {high}.")


def test_every_sample_shows_live_and_after_a_reload_and_each_opens_and_downloads(new_session, photos) -> None:
    s = new_session()
    page = s.page
    s.open("/")
    s.signup("Sam")
    pick_photos(page, photos, steps=FEW_STEPS)
    page.get_by_label("Samples", exact=True).fill("2")
    page.get_by_label("Seed", exact=True).fill("99")
    with page.expect_request("**/jobs/weaver") as started:
        page.get_by_role("button", name="Start try-on").click()
    body = started.value.post_data_json
    assert body["num_samples"] == 2 and body["seed"] == 99, body

    card = page.locator("#history-list > li")
    expect(card).to_have_attribute("data-status", "done", timeout=JOB_TIMEOUT_MS)
    thumbs = card.locator(".tryon-samples img")
    expect(thumbs).to_have_count(2)
    row = api_json(s.context, s.base_url, "GET", "/vton")[0]
    keys = row["result_keys"]
    assert len(keys) == 2 and len(set(keys)) == 2 and keys[0] == row["outfit_try_on"], row
    sources = []
    for i in range(2):
        assert loaded(page, thumbs.nth(i))
        sources.append(thumbs.nth(i).get_attribute("src"))
    assert sources[0] != sources[1]
    s.screenshot("webapp-samples-desktop.png")

    # the second sample full size, then downloaded as its own file
    card.get_by_role("button", name="Open sample 2 of 2", exact=False).click()
    dialog = page.get_by_role("dialog", name="Try-on result")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Sample 2")).to_have_attribute("aria-pressed", "true")
    image = page.locator("#result-image")
    assert loaded(page, image)
    assert "sample 2 of 2" in (image.get_attribute("alt") or "")
    s.screenshot("webapp-samples-dialog-desktop.png", full_page=False)
    with page.expect_download() as download:
        dialog.get_by_role("link", name="Download").click()
    assert download.value.suggested_filename == keys[1].rsplit("/", 1)[-1], download.value.suggested_filename
    second = Path(download.value.path()).read_bytes()
    assert second[:8] == b"\x89PNG\r\n\x1a\n"
    # the first sample is another picture
    dialog.get_by_role("button", name="Sample 1").click()
    expect(dialog.get_by_role("button", name="Sample 1")).to_have_attribute("aria-pressed", "true")
    with page.expect_download() as download:
        dialog.get_by_role("link", name="Download").click()
    assert download.value.suggested_filename == keys[0].rsplit("/", 1)[-1], download.value.suggested_filename
    assert Path(download.value.path()).read_bytes() != second
    dialog.get_by_role("button", name="Close").first.click()

    # after a reload the history still shows both
    page.reload()
    card = page.locator("#history-list > li")
    expect(card).to_have_attribute("data-status", "done")
    expect(card.locator(".tryon-samples img")).to_have_count(2)
    assert loaded(page, card.locator(".tryon-samples img").nth(1))
