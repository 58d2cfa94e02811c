// Real-browser test of the Intake console: Debian's chromium driven by
// playwright-core. Started by tests/tests/browser.rs, which runs the engine,
// Dovecot and the tenants and passes them in the environment; writes the
// main screens to $INTAKE_SCREENSHOTS when set.
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) { throw new Error(`${name} is not set`); }
  return value;
};
const base = env("INTAKE_URL");
const acmeToken = env("INTAKE_TOKEN_ACME");
const globexToken = env("INTAKE_TOKEN_GLOBEX");
const dovecotPort = env("INTAKE_DOVECOT_PORT");
const shots = process.env.INTAKE_SCREENSHOTS || "";

const browser = await chromium.launch({
  executablePath: process.env.INTAKE_CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});

/** A page that fails the test on any dialog, and records every request
 *  that leaves the engine's own origin. */
async function watchedPage(context) {
  const page = await context.newPage();
  const escapes = [];
  page.on("dialog", async (dialog) => {
    escapes.push(`dialog: ${dialog.message()}`);
    await dialog.dismiss();
  });
  page.on("request", (request) => {
    if (!request.url().startsWith(base) && !request.url().startsWith("data:") && request.url() !== "about:srcdoc") {
      escapes.push(`request: ${request.url()}`);
    }
  });
  page.escapes = escapes;
  return page;
}

async function shot(page, name) {
  if (shots) {
    await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
  }
}

async function signIn(page, token) {
  await page.goto(`${base}/login`);
  await page.getByLabel("API token").fill(token);
  await Promise.all([
    page.waitForLoadState("load"),
    page.getByRole("button", { name: "Sign in" }).click(),
  ]);
  await page.getByRole("heading", { name: "Accounts" }).waitFor({ timeout: 10000 }).catch(async (e) => {
    throw new Error(`not signed in: at ${page.url()}: ${(await page.content()).slice(0, 3000)}`);
  });
}

try {
  // ---- sign in
  const acme = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await watchedPage(acme);
  await page.goto(`${base}/accounts`);
  assert.equal(new URL(page.url()).pathname, "/login", "signed out goes to the sign-in page");
  await shot(page, "sign-in");
  await page.getByLabel("API token").fill("itk_not_a_token");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#login-error").waitFor();
  await signIn(page, acmeToken);
  const cookies = await acme.cookies();
  const session = cookies.find((c) => c.name === "intake_console");
  assert.ok(session && session.httpOnly && session.sameSite === "Strict", JSON.stringify(cookies));

  // ---- a new account from a preset, pointed at the test Dovecot
  await page.getByRole("link", { name: "New account" }).click();
  await page.getByLabel("Choose a provider").selectOption("fastmail");
  await page.getByRole("button", { name: "Use this provider" }).click();
  assert.equal(await page.getByLabel("Host", { exact: true }).inputValue(), "imap.fastmail.com");
  await shot(page, "new-account-from-preset");
  // The port's default follows protocol and security.
  await page.getByLabel("Security").selectOption("starttls");
  assert.equal(await page.locator("#default-port").textContent(), "143");
  await page.getByLabel("Protocol").selectOption("pop3");
  assert.equal(await page.locator("#default-port").textContent(), "110");
  await page.getByLabel("Protocol").selectOption("imap");
  await page.getByLabel("Security").selectOption("none");
  await page.getByLabel("Name", { exact: true }).fill("sales");
  await page.getByLabel("Host", { exact: true }).fill("localhost");
  await page.getByLabel("Port", { exact: true }).fill("not a port");
  await page.getByLabel("Credential", { exact: true }).fill("alice");
  await page.getByLabel("Interval (seconds)").fill("3600");
  await page.getByRole("button", { name: "Save" }).click();
  // A refused field is named at the field, and what was typed stays.
  await page.locator("#port-error").filter({ hasText: "a whole number" }).waitFor();
  assert.equal(await page.getByLabel("Port", { exact: true }).getAttribute("aria-invalid"), "true");
  assert.equal(await page.getByLabel("Host", { exact: true }).inputValue(), "localhost");
  await page.getByLabel("Port", { exact: true }).fill(dovecotPort);
  await page.getByRole("button", { name: "Save" }).click();
  await page.waitForURL(`${base}/accounts?notice=**`);
  await page.getByText("saved sales").waitFor();

  // ---- Test settings: every step
  await page.getByRole("row", { name: /sales/ }).getByRole("link", { name: "Test settings" }).click();
  await page.getByRole("button", { name: "Run the test" }).click();
  await page.getByText("Every step passed.").waitFor({ timeout: 30000 });
  const steps = await page.locator("li.step").evaluateAll((items) => items.map((i) => i.dataset.step));
  assert.deepEqual(steps, ["resolve", "connect", "capabilities", "login", "folder"]);
  await shot(page, "test-settings");

  // ---- check now; the inbox shows the message linked to its contact
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Accounts" }).click();
  await page.getByRole("row", { name: /sales/ }).getByRole("button", { name: "Check now" }).click();
  await page.getByText("a check was asked for").waitFor();
  await shot(page, "accounts");
  const deadline = Date.now() + 60000;
  for (;;) {
    await page.goto(`${base}/accounts/sales/inbox`);
    if (await page.getByText("Quarterly numbers").count()) { break; }
    assert.ok(Date.now() < deadline, "the message was not ingested within 60 s");
    await page.waitForTimeout(500);
  }
  const row = page.getByRole("row", { name: /Quarterly numbers/ });
  await row.getByText("Ann Lee").waitFor();
  assert.equal(await row.locator(".state").textContent(), "linked");
  await shot(page, "inbox");

  // ---- a hostile message renders inert: no dialog, no request leaves
  await row.getByRole("link").click();
  await page.locator("iframe.message-html").waitFor();
  const frame = page.frameLocator("iframe.message-html");
  await frame.getByText("Visible text").waitFor();
  assert.equal(await frame.locator("script, style, iframe, form, [onerror], [onload], [style]").count(), 0);
  const hrefs = await frame.locator("a").evaluateAll((links) => links.map((a) => a.getAttribute("href") || ""));
  assert.ok(hrefs.every((h) => !h.toLowerCase().startsWith("javascript:")), hrefs.join(","));
  await page.waitForTimeout(1000);
  await shot(page, "message");
  assert.deepEqual(page.escapes, [], "nothing ran and nothing left the engine");

  // ---- a quarantined message released by re-running the plugins
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Quarantine" }).click();
  const held = page.locator("li.held-item").filter({ hasText: "Held for the browser test" });
  await held.waitFor();
  await shot(page, "quarantine");
  await held.getByRole("button", { name: "Re-run the plugins" }).click();
  await page.getByText(/released/).waitFor();
  assert.equal(await page.locator("li.held-item").filter({ hasText: "Held for the browser test" }).count(), 0);

  // ---- contacts and webhooks
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Contacts" }).click();
  await page.getByLabel("Search").fill("ann");
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByRole("row", { name: /ann\.lee@acme\.example/ }).waitFor();
  await shot(page, "contacts");
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Webhooks" }).click();
  await page.getByRole("heading", { name: "Webhooks" }).waitFor();
  await shot(page, "webhooks");
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Plugins" }).click();
  await page.locator("li.plugin").first().waitFor();
  await shot(page, "plugins");

  // ---- credentials page
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Credentials" }).click();
  await page.getByRole("heading", { name: "Credentials" }).waitFor();
  await shot(page, "credentials");

  // ---- another tenant's session cannot open acme's pages or forms
  const globex = await browser.newContext();
  const other = await watchedPage(globex);
  await signIn(other, globexToken);
  assert.equal(await other.getByText("sales").count(), 0);
  for (const path of ["/accounts/sales/inbox", "/accounts/sales/edit", "/accounts/sales/test"]) {
    const response = await other.goto(`${base}${path}`);
    assert.equal(response.status(), 404, path);
  }
  // A form aimed at acme's account by URL is refused as not found.
  await other.goto(`${base}/accounts`);
  const refused = await other.evaluate(async () => {
    const csrf = document.querySelector("input[name=csrf]").value;
    const r = await fetch("/accounts/sales/disable", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: `csrf=${encodeURIComponent(csrf)}`,
    });
    return r.status;
  });
  assert.equal(refused, 404);
  // acme's account is untouched.
  await page.goto(`${base}/accounts`);
  await page.getByRole("row", { name: /sales/ }).getByRole("button", { name: "Disable" }).waitFor();

  // ---- keyboard: the sign-out button is reachable and labelled
  await page.getByRole("button", { name: "Sign out" }).focus();
  await page.keyboard.press("Enter");
  await page.waitForURL(`${base}/login`);
  console.log("console browser test: ok");
} finally {
  await browser.close();
}
