import time, re
from pathlib import Path
import pytest
from playwright.sync_api import expect

def test_scratch(new_session, photos, tmp_path):
    s = new_session(); page = s.page
    t0 = time.monotonic()
    s.open("/"); s.signup("Zed")
    print("signup", time.monotonic() - t0)
    fake = tmp_path / "broken.jpg"; fake.write_bytes(b"this is not really a jpeg" * 40)
    page.get_by_label("Person photo").set_input_files(photos["person"])
    page.get_by_label("Garment photo").set_input_files(fake)
    t0 = time.monotonic()
    page.get_by_role("button", name="Start try-on").click()
    problem = page.locator("#garment-error, #history-list .tryon-error").filter(has_text=re.compile(r"\S"))
    expect(problem.first).to_be_visible(timeout=60000)
    print("broken:", time.monotonic() - t0, problem.first.get_attribute("id"), problem.first.text_content())
    # real HEIC
    import pillow_heif
    from PIL import Image
    pillow_heif.register_heif_opener()
    heic = tmp_path / "garment.heic"
    Image.open(photos["garment"]).save(heic, format="HEIF")
    page.get_by_label("Garment photo").set_input_files(heic)
    print("heic preview:", page.locator('[data-preview="garment"]').text_content())
    t0 = time.monotonic()
    page.get_by_role("button", name="Start try-on").click()
    card = page.locator("#history-list > li").first
    page.wait_for_timeout(300)
    for i in range(100):
        st = card.get_attribute("data-status"); print(round(time.monotonic()-t0,2), st, page.locator("#history-list .tryon-step").all_text_contents(), page.locator("#create-status").text_content(), page.locator("#garment-error").text_content())
        if st in ("done", "failed"): break
        time.sleep(0.25)
    print(card.inner_text())
