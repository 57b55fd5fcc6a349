// @ts-check
// The console's shell: sign-in, navigation (#/page/argument), language, and each page's
// errors shown in place of the page.
import { api, byCookie, get, setSession, signIn, signOut, signedIn, useCookieSession } from "./api.js";
import { errorText, failure, h, notFound } from "./dom.js";
import { setLocale, t } from "./i18n.js";
import { approvals } from "./pages/approvals.js";
import { audit } from "./pages/audit.js";
import { config } from "./pages/config.js";
import { economy } from "./pages/economy.js";
import { experiments } from "./pages/experiments.js";
import { health } from "./pages/health.js";
import { mall } from "./pages/mall.js";
import { member } from "./pages/member.js";
import { members } from "./pages/members.js";
import { overview } from "./pages/overview.js";
import { reviews } from "./pages/reviews.js";
import { simulate } from "./pages/simulate.js";
import { webhooks } from "./pages/webhooks.js";

const PAGES = { overview, economy, config, simulate, experiments, reviews, members, member, mall, approvals, webhooks, audit, health };
// Pages only some roles see (the API refuses the others anyway).
const NEEDS = { audit: "finance" };
// The menu: one member's page opens from Members.
const MENU = Object.keys(PAGES).filter((name) => name !== "member");
const page = document.getElementById("page");
const nav = document.getElementById("nav");
const signInForm = document.getElementById("sign-in");

function renderNav(current) {
  const active = current === "member" ? "members" : current;
  nav.replaceChildren(...MENU.map((name) =>
    h("a", { href: `#/${name}`, class: name === active ? "active" : "", "data-page": name, "data-needs": NEEDS[name] }, t(name))));
}

async function route() {
  if (!signedIn()) {
    page.replaceChildren(signInForm);
    return;
  }
  document.getElementById("notice").hidden = true; // a notice belongs to the page it came on
  const [name, argument] = location.hash.replace(/^#\//, "").split("/");
  const current = name ? name : "overview";
  renderNav(current);
  const root = h("div", { "data-page": current });
  page.replaceChildren(root);
  if (!Object.hasOwn(PAGES, current)) root.replaceChildren(notFound());
  else {
    try {
      await PAGES[current](root, argument ? decodeURIComponent(argument) : undefined);
    } catch (error) {
      root.replaceChildren(failure(error, route));
    }
  }
  root.dataset.ready = "true";
}

const tokenInput = /** @type {HTMLInputElement} */ (document.getElementById("token"));

// Who the credentials are (GET /v1/admin/me); false, with the reason shown, when they are not
// an operator's.
async function start() {
  try {
    setSession(await get("/v1/admin/me"));
  } catch (error) {
    signOut();
    document.getElementById("sign-in-error").textContent = error.status === 403 ? t("notAdmin") : errorText(error);
    return false;
  }
  nav.hidden = false;
  document.getElementById("sign-out").hidden = false;
  route();
  return true;
}

signInForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  signIn(tokenInput.value);
  if (await start()) tokenInput.value = "";
});

document.getElementById("sign-out").addEventListener("click", async () => {
  const provider = byCookie() ? await api("POST", "/console/auth/logout", {}).catch(() => ({})) : {};
  signOut();
  nav.hidden = true;
  document.getElementById("sign-out").hidden = true;
  if (provider.end_session_url) location.assign(provider.end_session_url);
  else route();
});

// With an identity provider: its button, the session cookie tried first, and the token box
// for development only.
async function signInOptions() {
  const options = await fetch("/console/auth/config").then((r) => r.json()).catch(() => ({ oidc: false, paste: true }));
  document.getElementById("oidc").hidden = !options.oidc;
  document.getElementById("paste").hidden = !options.paste;
  if (!options.oidc) return;
  useCookieSession();
  const before = document.getElementById("sign-in-error").textContent;
  if (!(await start()) && before === "") document.getElementById("sign-in-error").textContent = "";
}

const language = /** @type {HTMLSelectElement} */ (document.getElementById("language"));
language.value = navigator.language?.startsWith("zh") ? "zh-CN" : "en";
language.addEventListener("change", () => { setLocale(language.value); route(); });
setLocale(language.value);
window.addEventListener("hashchange", route);
route();
signInOptions();
