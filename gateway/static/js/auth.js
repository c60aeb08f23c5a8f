// Log in, sign up, log out, the Account view and deleting the account.
import { api, ApiError, plainMessage } from "./api.js";
import { $, clearFieldErrors, confirmDialog, fieldError, formatDate, setText } from "./dom.js";
import { runsKey, state, storageDo } from "./state.js";
import { loadApiKeys } from "./keys.js";
import { enterApp, leaveApp, route } from "./session.js";

export function wireAuth() {
  const login = $("#login-form");
  login.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearFieldErrors(login);
    const email = $("#login-email");
    const password = $("#login-password");
    let ok = true;
    if (!email.value.trim()) {
      fieldError(email, $("#login-email-error"), "Enter your email.");
      ok = false;
    }
    if (!password.value) {
      fieldError(password, $("#login-password-error"), "Enter your password.");
      ok = false;
    }
    if (!ok) return login.querySelector("[aria-invalid]").focus();
    const button = login.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await api.login(email.value.trim(), password.value);
      const user = await api.me();
      password.value = "";
      await enterApp(user);
    } catch (err) {
      const text = err instanceof ApiError && (err.status === 401 || err.status === 403)
        ? "Wrong email or password."
        : plainMessage(err);
      setText($("#login-error"), text);
    } finally {
      button.disabled = false;
    }
  });

  const signup = $("#signup-form");
  const fields = {
    user_name: [$("#signup-name"), $("#signup-name-error")],
    email: [$("#signup-email"), $("#signup-email-error")],
    password: [$("#signup-password"), $("#signup-password-error")],
  };
  signup.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearFieldErrors(signup);
    const values = {
      user_name: fields.user_name[0].value.trim(),
      email: fields.email[0].value.trim(),
      password: fields.password[0].value,
    };
    const missing = { user_name: "Enter a name.", email: "Enter your email.", password: "Choose a password." };
    let ok = true;
    for (const [k, [input, errEl]] of Object.entries(fields)) {
      if (!values[k]) {
        fieldError(input, errEl, missing[k]);
        ok = false;
      }
    }
    if (ok && !fields.email[0].checkValidity()) {
      fieldError(fields.email[0], fields.email[1], "That doesn't look like an email address.");
      ok = false;
    }
    if (!ok) return signup.querySelector("[aria-invalid]").focus();
    const button = signup.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await api.signup(values.user_name, values.email, values.password);
      await api.login(values.email, values.password);
      const user = await api.me();
      fields.password[0].value = "";
      await enterApp(user);
    } catch (err) {
      const text = plainMessage(err);
      const target = err instanceof ApiError && err.field && fields[err.field];
      if (target) {
        fieldError(target[0], target[1], text);
        target[0].focus();
      } else {
        setText($("#signup-error"), text);
      }
    } finally {
      button.disabled = false;
    }
  });

  const logout = async () => {
    try {
      await api.logout();
    } catch {
      /* the cookie is gone or the server is away: leave the page logged out either way */
    }
    leaveApp("You are logged out.");
  };
  $("#logout-button").addEventListener("click", logout);
  $("#account-logout").addEventListener("click", logout);

  $("#account-delete").addEventListener("click", async () => {
    const ok = await confirmDialog(
      "Delete your account?",
      "Your account, every photo you uploaded and every try-on will be deleted. This cannot be undone.",
      "Delete account",
    );
    if (!ok) return;
    const button = $("#account-delete");
    button.disabled = true;
    setText($("#account-error"), "");
    try {
      await api.deleteAccount();
      const key = runsKey();
      if (key) storageDo((s) => s.removeItem(key));
      leaveApp("Your account and everything in it was deleted.");
      history.replaceState(null, "", "#/signup");
      route();
    } catch (err) {
      setText($("#account-error"), plainMessage(err));
    } finally {
      button.disabled = false;
    }
  });
}

export function fillAccount() {
  const u = state.user || {};
  $("#account-name").textContent = u.user_name || "";
  $("#account-email").textContent = u.email || "";
  $("#account-created").textContent = formatDate(u.createdAt || u.created_at);
  $("#api-key-new").hidden = true;
  loadApiKeys();
}
