// Cookie sessions in a real browser: headless Chromium (playwright-core,
// Debian's /usr/bin/chromium) with the page on http://localhost:A and the
// API on http://localhost:B (different origins of one site, like
// app.example.com and api.example.com; the session cookie is SameSite=Lax).
// The page signs in, its script cannot see the token (document.cookie), its
// calls work with credentials: "include", and signing out clears the cookie.
// A page on a third origin (http://localhost:C, same site, not allowed)
// posts a form to the API, which is refused and changes nothing, and cannot
// read an answer by fetch. Screenshots go to $COOKIE_SESSION_OUT.
//
//   node test.mjs          (GATEHOUSE_BIN, CHROMIUM to override the paths)
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

import { runBounded, serveFiles, startGatehouse } from "../../tests/gatehouse-process.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const OUT = process.env.COOKIE_SESSION_OUT ?? mkdtempSync(join(tmpdir(), "gatehouse-cookie-session-"));
const PASSWORD = "Cookie-Passphrase-42";
const TOTAL_LIMIT_MS = 90_000;

const started = Date.now();

/** A call from Node (no browser, no cookie): bearer-style, as before. */
async function nodeCall(api, path, input, token) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(`${api}/trpc/${path}`, {
    method: "POST",
    headers,
    body: JSON.stringify({ json: input }),
  });
  const body = await response.json();
  assert.ok(body.result, `${path}: ${JSON.stringify(body)}`);
  return body.result.data.json;
}

/** The third origin's page: a form posting to the API, and a fetch trying to read it. */
function evilPage(api) {
  return `<!doctype html><meta charset="utf-8"><title>Elsewhere</title>
<h1>Another origin</h1>
<output id="read" data-testid="read">reading…</output>
<form id="csrf" method="POST" action="${api}/api/auth/logout-all"><button>Win a prize</button></form>
<script type="module">
  const read = document.getElementById("read");
  try {
    const response = await fetch("${api}/trpc/auth.me", { credentials: "include" });
    read.textContent = "read: " + (await response.text());
  } catch (e) {
    read.textContent = "blocked: " + e.name;
  }
</script>`;
}

const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;

async function main(cleanups) {
  mkdirSync(OUT, { recursive: true });
  const appPort = await serveFiles({
    "/index.html": ["text/html; charset=utf-8", readFileSync(join(here, "index.html"))],
    "/app.js": ["text/javascript; charset=utf-8", readFileSync(join(here, "app.js"))],
  }, cleanups);
  const appOrigin = `http://localhost:${appPort}`;
  // The API allows the page's origin only.
  const gatehouse = await startGatehouse("cookie-session", {
    GATEHOUSE_CORS_ORIGINS: appOrigin,
    GATEHOUSE_COOKIE_MODE: "opt-in",
  });
  cleanups.push(gatehouse.stop);
  const port = new URL(gatehouse.origin).port;
  const api = `http://localhost:${port}`;
  const evilFiles = {};
  const evilPort = await serveFiles(evilFiles, cleanups);
  evilFiles["/index.html"] = ["text/html; charset=utf-8", evilPage(api)];
  const evilOrigin = `http://localhost:${evilPort}`;
  console.log(`page ${appOrigin}, API ${api}, other origin ${evilOrigin} (${elapsed()})`);

  const email = `cookie-${process.pid}-${Date.now()}@example.com`;
  const apiFromNode = gatehouse.origin;
  await nodeCall(apiFromNode, "auth.register", { email, password: PASSWORD, firstName: "Cora", lastName: "Cookie" });

  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  cleanups.push(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 720, height: 520 } });
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  const shot = async (p, name) => {
    const path = join(OUT, name);
    await p.screenshot({ path });
    console.log(`screenshot ${path}`);
  };
  const sessionCookie = async () =>
    (await context.cookies(api)).find((c) => c.name === "gatehouse_session");
  try {
    await page.goto(`${appOrigin}/?api=${encodeURIComponent(api)}`);
    await page.getByTestId("status").filter({ hasText: "Signed out" }).waitFor({ timeout: 10_000 });
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page
      .getByTestId("status")
      .filter({ hasText: `Signed in as ${email} (Cora Cookie)` })
      .waitFor({ timeout: 10_000 });
    // The answer carried no token; the cookie did, and script cannot see it.
    await page.getByTestId("log").filter({ hasText: 'token=""' }).waitFor({ timeout: 2_000 });
    const cookie = await sessionCookie();
    assert.ok(cookie, "the browser holds the session cookie");
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, "Lax");
    assert.equal(cookie.secure, false, "Secure dropped for http://localhost");
    assert.equal(cookie.value.split(".").length, 3, "a JWT");
    const visible = await page.evaluate(() => document.cookie);
    assert.ok(!visible.includes(cookie.value) && !visible.includes("gatehouse_session"), visible);
    await shot(page, "cookie-session-1-signed-in.png");
    console.log(`signed in by cookie; document.cookie=${JSON.stringify(visible)} (${elapsed()})`);

    // A mutation with the cookie from the allowed page works.
    await page.getByRole("button", { name: "Rename to Cookie" }).click();
    await page.getByTestId("status").filter({ hasText: "(Cookie Cookie)" }).waitFor({ timeout: 5_000 });

    // The third origin: its fetch cannot read the answer (no CORS for it)...
    const evil = await context.newPage();
    await evil.goto(evilOrigin);
    await evil.getByTestId("read").filter({ hasText: /^blocked: TypeError$/ }).waitFor({ timeout: 5_000 });
    // ...and its form (same site, so the Lax cookie goes along) is refused.
    const [formAnswer] = await Promise.all([
      evil.waitForResponse((r) => r.url() === `${api}/api/auth/logout-all`, { timeout: 5_000 }),
      evil.getByRole("button", { name: "Win a prize" }).click(),
    ]);
    assert.equal(formAnswer.status(), 403);
    assert.equal((await formAnswer.json()).code, "FORBIDDEN");
    const sent = await formAnswer.request().allHeaders();
    assert.ok((sent.cookie ?? "").includes("gatehouse_session="), "the form did carry the cookie");
    await evil.waitForLoadState();
    await shot(evil, "cookie-session-2-form-refused.png");
    console.log(`third origin: fetch blocked, form answered ${formAnswer.status()} (${elapsed()})`);
    // Nothing changed: the session still works.
    await page.reload();
    await page.getByTestId("status").filter({ hasText: `Signed in as ${email}` }).waitFor({ timeout: 5_000 });

    // Signing out clears the cookie and ends the session.
    const stolen = cookie.value;
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByTestId("status").filter({ hasText: "Signed out" }).waitFor({ timeout: 5_000 });
    assert.equal(await sessionCookie(), undefined, "cookie cleared");
    await shot(page, "cookie-session-3-signed-out.png");
    const after = await fetch(`${apiFromNode}/trpc/auth.me`, { headers: { cookie: `gatehouse_session=${stolen}` } });
    assert.equal(after.status, 401, "the session is revoked, not only forgotten");
    assert.deepEqual(problems, [], "no errors in the pages");
    console.log(`cookie-session: passed in ${elapsed()}`);
  } catch (e) {
    await page.screenshot({ path: join(OUT, "cookie-session-failure.png") }).catch(() => {});
    console.error(`page problems: ${JSON.stringify(problems)}\ngatehouse stderr:\n${gatehouse.stderr()}`);
    throw e;
  }
}

await runBounded("cookie-session", TOTAL_LIMIT_MS, main);
