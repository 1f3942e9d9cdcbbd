// The API reference page (GET /docs) in a real browser: headless Chromium
// (playwright-core, Debian's /usr/bin/chromium) opens it on the gatehouse
// binary and checks that
// - the page loads with its Content-Security-Policy, without console errors,
//   CSP violations, failed requests or any request to another host (those
//   are blocked and fail the test: the page must work offline);
// - every operation of /openapi.json is listed (its operation id and path);
// - "Try it out" on POST <rest prefix>/auth/register sends the request to the
//   same server and shows its 201 answer.
// Screenshots go to $DOCS_PAGE_OUT (default: a new temp dir); their paths are
// printed.
//
//   node test.mjs    (GATEHOUSE_URL to use a running server instead of
//                     starting GATEHOUSE_BIN; CHROMIUM to override the path)
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { chromium } from "playwright-core";

import { runBounded, startGatehouse } from "../gatehouse-process.mjs";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const OUT = process.env.DOCS_PAGE_OUT ?? mkdtempSync(join(tmpdir(), "gatehouse-docs-page-"));
const TOTAL_LIMIT_MS = 90_000;

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;

/** Every operation of the document: id, method and path. */
function operationsOf(document) {
  const methods = new Set(["get", "put", "post", "delete", "options", "head", "patch", "trace"]);
  const operations = [];
  for (const [path, item] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(item)) {
      if (methods.has(method)) operations.push({ id: operation.operationId, method, path });
    }
  }
  return operations;
}

async function main(cleanups) {
  mkdirSync(OUT, { recursive: true });
  let server = { origin: process.env.GATEHOUSE_URL ?? "", stderr: () => "(not started by this test)" };
  if (!process.env.GATEHOUSE_URL) {
    server = await startGatehouse("docs-page");
    cleanups.push(server.stop);
  }
  const origin = new URL(server.origin).origin;
  const document = await (await fetch(`${origin}/openapi.json`)).json();
  const operations = operationsOf(document);
  assert.ok(operations.length > 0, "the document has operations");
  const register = operations.find((o) => o.method === "post" && o.path.endsWith("/auth/register") && !o.path.startsWith("/trpc"));
  assert.ok(register, "the document has the REST route POST …/auth/register");
  console.log(`server ${origin}, ${operations.length} operations (${elapsed()})`);

  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  cleanups.push(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const problems = [];
  // Nothing may leave the server: any other host is blocked and a failure.
  await context.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (url.protocol === "data:" || url.origin === origin) return route.continue();
    problems.push(`request off the server: ${route.request().method()} ${url.href}`);
    return route.abort("blockedbyclient");
  });
  // Violations of the page's CSP, as the page itself sees them.
  await context.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener("securitypolicyviolation", (e) =>
      window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`),
    );
  });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console.error: ${m.text()}`);
  });
  page.on("requestfailed", (r) => problems.push(`request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`));
  page.on("response", (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()} ${r.request().method()} ${r.url()}`);
  });

  try {
    const response = await page.goto(`${origin}/docs`);
    assert.equal(response?.status(), 200, "GET /docs");
    const csp = response.headers()["content-security-policy"] ?? "";
    assert.match(csp, /default-src 'self'/, "the page has its CSP");
    assert.doesNotMatch(csp, /unsafe-eval/, "no eval allowed");

    // Every operation is listed: its id and its path, under its method.
    await page.locator(".opblock").first().waitFor({ timeout: 20_000 });
    const listed = await page.locator(".opblock").evaluateAll((blocks) =>
      blocks.map((b) => ({
        id: b.querySelector(".opblock-summary-operation-id")?.textContent?.trim(),
        method: b.querySelector(".opblock-summary-method")?.textContent?.trim().toLowerCase(),
        path: b.querySelector(".opblock-summary-path")?.getAttribute("data-path"),
      })),
    );
    const key = (o) => `${o.method} ${o.path} ${o.id}`;
    assert.deepEqual(listed.map(key).sort(), operations.map(key).sort(), "the page lists every operation of /openapi.json");
    const overview = join(OUT, "docs-page-1-operations.png");
    await page.screenshot({ path: overview, fullPage: true });
    console.log(`${listed.length} operations listed (${elapsed()}); screenshot ${overview}`);

    // Try it out: register an account through the page.
    const block = page.locator(".opblock").filter({
      has: page.locator(".opblock-summary-operation-id", { hasText: new RegExp(`^${register.id}$`) }),
    });
    await block.locator(".opblock-summary-control").click();
    await block.getByRole("button", { name: "Try it out" }).click();
    const email = `docs-page-${process.pid}-${Date.now()}@example.com`;
    const input = { email, password: "Docs-Page-Passphrase-42", firstName: "Dot", lastName: "Docs" };
    await block.locator("textarea.body-param__text").fill(JSON.stringify(input, null, 2));
    const sent = page.waitForRequest((r) => r.method() === "POST" && new URL(r.url()).pathname === register.path);
    await block.getByRole("button", { name: "Execute" }).click();
    const request = await sent;
    assert.equal(new URL(request.url()).origin, origin, "Try it out calls the server that served the page");
    const live = block.locator(".live-responses-table");
    await live.locator(".response-col_status", { hasText: "201" }).waitFor({ timeout: 10_000 });
    await live.getByText(email).first().waitFor({ timeout: 5_000 });
    // From the operation's header down to the answer shown.
    const [top, bottom, scrollY] = [await block.boundingBox(), await live.boundingBox(), await page.evaluate(() => window.scrollY)];
    const tried = join(OUT, "docs-page-2-try-it-out.png");
    await page.screenshot({
      path: tried,
      fullPage: true,
      clip: { x: top.x, y: top.y + scrollY, width: top.width, height: bottom.y + bottom.height - top.y },
    });
    console.log(`Try it out: ${request.method()} ${request.url()} answered 201 (${elapsed()}); screenshot ${tried}`);

    const violations = await page.evaluate(() => window.__cspViolations);
    assert.deepEqual(violations, [], "no Content-Security-Policy violations");
    assert.deepEqual(problems, [], "no errors in the page, no failed requests, nothing off the server");
    console.log(`docs-page: passed in ${elapsed()}`);
  } catch (e) {
    const failed = join(OUT, "docs-page-failure.png");
    await page.screenshot({ path: failed, fullPage: true }).catch(() => {});
    const violations = await page.evaluate(() => window.__cspViolations).catch(() => "?");
    console.error(
      `page problems: ${JSON.stringify(problems, null, 1)}\nCSP violations: ${JSON.stringify(violations)}\nscreenshot ${failed}\ngatehouse stderr:\n${server.stderr()}`,
    );
    throw e;
  }
}

await runBounded("docs-page", TOTAL_LIMIT_MS, main);
