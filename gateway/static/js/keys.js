// The Account view's API keys and webhook secret: create (the key is shown once), list by
// prefix with created / last-used times, revoke; show and rotate the webhook signing secret.
import { api, plainMessage } from "./api.js";

const $ = (selector) => document.querySelector(selector);

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "never";
}

function showError(err) {
  const box = $("#api-key-error");
  box.textContent = err ? plainMessage(err) : "";
  box.hidden = !err;
}

function keyItem(key) {
  const li = document.createElement("li");
  li.className = "key-item";
  li.dataset.keyId = key.id;
  const label = document.createElement("span");
  const state = key.revoked_at ? ` – revoked ${when(key.revoked_at)}` : "";
  label.textContent = `${key.name || "key"} · ${key.prefix}… · created ${when(key.created_at)} · ` +
    `last used ${when(key.last_used_at)}${state}`;
  li.append(label);
  if (!key.revoked_at) {
    const revoke = document.createElement("button");
    revoke.type = "button";
    revoke.className = "button-secondary";
    revoke.textContent = "Revoke";
    revoke.setAttribute("aria-label", `Revoke key ${key.prefix}`);
    revoke.addEventListener("click", async () => {
      revoke.disabled = true;
      try {
        await api.revokeApiKey(key.id);
        await loadApiKeys();
      } catch (err) {
        showError(err);
        revoke.disabled = false;
      }
    });
    li.append(" ", revoke);
  }
  return li;
}

/** Fill the panel (called whenever the Account view opens). */
export async function loadApiKeys() {
  showError(null);
  try {
    const [keys, hooks] = await Promise.all([api.listApiKeys(), api.webhookSettings()]);
    $("#api-key-list").replaceChildren(...keys.map(keyItem));
    $("#webhook-secret").textContent = hooks.secret;
  } catch (err) {
    showError(err);
  }
}

/** Wire the form and buttons once. */
export function wireApiKeys() {
  $("#api-key-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError(null);
    const name = $("#api-key-name").value.trim();
    try {
      const created = await api.createApiKey(name);
      $("#api-key-value").value = created.key;
      $("#api-key-new").hidden = false;
      $("#api-key-value").select();
      $("#api-key-name").value = "";
      await loadApiKeys();
    } catch (err) {
      showError(err);
    }
  });
  $("#webhook-rotate").addEventListener("click", async () => {
    showError(null);
    try {
      $("#webhook-secret").textContent = (await api.rotateWebhookSecret()).secret;
    } catch (err) {
      showError(err);
    }
  });
}
