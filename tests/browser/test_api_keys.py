"""The Account view's API keys: created (shown once), listed by prefix with its creation time,
revoked, and a revoked key is refused by /v1 at once."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from playwright.sync_api import expect


def v1_status(base: str, key: str) -> int:
    """GET /v1/webhooks/deliveries with the key alone (no cookie): the HTTP status."""
    request = urllib.request.Request(base + "/v1/webhooks/deliveries", headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            json.load(response)
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def test_create_list_revoke_a_key_and_v1_refuses_it(new_session: Any) -> None:
    s = new_session()
    page = s.page
    s.open("/")
    s.signup("Kay")
    page.get_by_role("link", name="Account").click()
    expect(page.get_by_role("heading", name="API keys")).to_be_visible()
    keys = page.locator("#api-key-list > li")
    expect(keys).to_have_count(0)

    page.locator("#api-key-name").fill("shop backend")
    page.get_by_role("button", name="Create a key").click()
    shown = page.get_by_label("Your new API key")
    expect(shown).to_be_visible()
    key = shown.input_value()
    assert len(key) > 20, key
    expect(keys).to_have_count(1)
    item = keys.first
    listed = api_json_keys(s)
    assert len(listed) == 1 and key.startswith(listed[0]["prefix"]) and listed[0]["name"] == "shop backend"
    expect(item).to_contain_text(f"shop backend · {listed[0]['prefix']}… · created ")
    expect(item).to_contain_text("last used never")
    assert key not in item.inner_text()  # listed by its prefix only
    assert v1_status(s.base_url, key) == 200

    # shown once: after a reload only the prefix is left
    page.reload()
    expect(page.get_by_role("heading", name="API keys")).to_be_visible()
    expect(page.locator("#api-key-new")).to_be_hidden()
    expect(keys).to_have_count(1)
    assert key not in page.content()

    keys.first.get_by_role("button", name=f"Revoke key {listed[0]['prefix']}").click()
    expect(keys.first).to_contain_text("revoked")
    expect(keys.first.get_by_role("button")).to_have_count(0)
    assert v1_status(s.base_url, key) == 401


def api_json_keys(s: Any) -> list[dict[str, Any]]:
    response = s.context.request.get(s.base_url + "/api-keys")
    assert response.ok, response.text()
    return list(response.json()["keys"])
