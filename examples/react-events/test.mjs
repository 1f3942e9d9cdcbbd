// The React page in a real browser: headless Chromium (playwright-core,
// Debian's /usr/bin/chromium) signs in through the page, Node revokes every
// session of that user from another client (auth.logoutAll), and the page
// must show the revocation within 2 s. Screenshots before and after go to
// $REACT_EVENTS_OUT (default: a new temp dir); their paths are printed.
//
//   node test.mjs          (GATEHOUSE_BIN, CHROMIUM to override the paths)
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { createTRPCClient, httpBatchLink } from "@trpc/client";
import { chromium } from "playwright-core";
import superjson from "superjson";

import { runBounded, serveFiles, startGatehouse } from "../../tests/gatehouse-process.mjs";
import { bundle } from "./build.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const OUT = process.env.REACT_EVENTS_OUT ?? mkdtempSync(join(tmpdir(), "gatehouse-react-events-"));
const PASSWORD = "Browser-Passphrase-42";
const TOTAL_LIMIT_MS = 60_000;
const REVOCATION_LIMIT_MS = 2_000;

const started = Date.now();

/** Serves index.html and the bundle on 127.0.0.1 at a free port. */
async function serveStatic(cleanups, appJs) {
  const port = await serveFiles(
    {
      "/index.html": ["text/html; charset=utf-8", readFileSync(join(here, "index.html"))],
      "/app.js": ["text/javascript; charset=utf-8", appJs],
    },
    cleanups,
  );
  return `http://127.0.0.1:${port}`;
}

function nodeClient(url, token = null) {
  return createTRPCClient({
    links: [
      httpBatchLink({
        url,
        transformer: superjson,
        headers: () => (token ? { authorization: `Bearer ${token}` } : {}),
      }),
    ],
  });
}

const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;

async function main(cleanups) {
  mkdirSync(OUT, { recursive: true });
  const appJs = await bundle();
  const pageOrigin = await serveStatic(cleanups, appJs);
  // The page is on another origin than the API: allow it.
  const gatehouse = await startGatehouse("react-events", { GATEHOUSE_CORS_ORIGINS: pageOrigin });
  cleanups.push(gatehouse.stop);
  const api = `${gatehouse.origin}/trpc`;
  console.log(`page ${pageOrigin}, gatehouse ${gatehouse.origin} (${elapsed()})`);

  const email = `browser-${process.pid}-${Date.now()}@example.com`;
  await nodeClient(api).auth.register.mutate({ email, password: PASSWORD, firstName: "Bea", lastName: "Browser" });

  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  cleanups.push(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 720, height: 520 } });
  const problems = [];
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console.error: ${m.text()}`);
  });
  page.on("response", (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()} ${r.request().method()} ${r.url()}`);
  });
  try {
    await page.goto(`${pageOrigin}/?api=${encodeURIComponent(api)}`);
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByTestId("signed-in").filter({ hasText: `Signed in as ${email}` }).waitFor({ timeout: 10_000 });
    // The stream is open (its `connected` event came) before we revoke.
    await page.getByTestId("stream").filter({ hasText: "(live)" }).waitFor({ timeout: 10_000 });
    await page.getByText(/^Session [0-9a-f-]{8}…$/i).waitFor({ timeout: 10_000 });

    // Another client of the same user: a profile change shows up live.
    const other = await nodeClient(api).auth.login.mutate({ email, password: PASSWORD });
    const otherClient = nodeClient(api, other.token);
    await otherClient.auth.updateProfile.mutate({ firstName: "Beatrix" });
    await page.getByTestId("log").getByText("profile updated: Beatrix Browser").waitFor({ timeout: 2_000 });
    const before = join(OUT, "react-events-1-signed-in.png");
    await page.screenshot({ path: before });
    console.log(`signed in through the page (${elapsed()}); screenshot ${before}`);

    // The other client ends every session of the user, the page's too.
    const t0 = Date.now();
    await otherClient.auth.logoutAll.mutate();
    await page
      .getByTestId("notice")
      .filter({ hasText: "Session revoked: signed out" })
      .waitFor({ timeout: REVOCATION_LIMIT_MS });
    const latency = Date.now() - t0;
    const after = join(OUT, "react-events-2-revoked.png");
    await page.screenshot({ path: after });
    console.log(`revocation shown ${latency} ms after auth.logoutAll; screenshot ${after}`);
    assert.ok(latency < REVOCATION_LIMIT_MS, `shown after ${latency} ms`);

    // Signed out: the token is gone and the login form is back.
    assert.equal(await page.getByTestId("signed-in").count(), 0);
    await page.getByRole("button", { name: "Sign in" }).waitFor({ timeout: 2_000 });
    const notice = await page.getByTestId("notice").textContent();
    // The reason shows the page read the session.revoked event itself.
    assert.equal(notice, "Session revoked: signed out (logoutAll)");
    assert.deepEqual(problems, [], "no errors in the page, no failed requests");
    console.log(`react-events: passed in ${elapsed()}`);
  } catch (e) {
    const failed = join(OUT, "react-events-failure.png");
    await page.screenshot({ path: failed }).catch(() => {});
    console.error(`page problems: ${JSON.stringify(problems)}\nscreenshot ${failed}\ngatehouse stderr:\n${gatehouse.stderr()}`);
    throw e;
  }
}

await runBounded("react-events", TOTAL_LIMIT_MS, main);
