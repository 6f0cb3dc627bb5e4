// Drives keyway serve's hosted connect page in a real browser (Debian's chromium through
// playwright-core) as an end user would: open the connect link, pick the integration, allow
// access on the provider's consent page, land on the done page, follow its return link.
//
//   node connect.mjs --url CONNECT_URL --out DIR [--integration ID] [--user NAME]
//                    [--timeout-ms 20000] [--chromium /usr/bin/chromium]
//                    [--wrong-fields JSON --fields JSON]
//
// With --fields (an integration whose profile links an API key, Basic, ...), the provider's
// page is not visited: the credential form is filled with --wrong-fields and sent (the refusal
// must be shown, secret inputs empty: connect-refused.png, connect-refused-phone.png), then
// with --fields, which lands on the done page.
//
// Screenshots (PNG, full page) in DIR: connect.png (1280 px wide), connect-details.png (the
// same with the permissions list open), connect-phone.png (390 px), consent.png (the
// provider's page), done.png and done-phone.png (390 px); failure.png when a step fails.
// Prints one JSON line on stdout with what it saw; exits 1 with `connect.mjs: FAILED ...` on
// stderr at the first failure. Each step waits at most --timeout-ms; the whole run at most
// six times that.
//
// playwright-core is loaded from KEYWAY_NODE_DIR (default: the repository's target/node), where
// scripts/test-deps.sh installs it. The browser is Debian's chromium (KEYWAY_CHROMIUM or
// --chromium), never a Playwright download. The done page's return redirect (to the platform's
// return_url) is answered in the browser by a stand-in page, so nothing leaves 127.0.0.1.

import { createRequire } from "node:module";
import { mkdtempSync, mkdirSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const here = dirname(fileURLToPath(import.meta.url));
const started = Date.now();

function fail(step, message) {
  process.stderr.write(`connect.mjs: FAILED at ${step}: ${message}\n`);
  process.exit(1);
}

let args;
try {
  args = parseArgs({
    options: {
      url: { type: "string" },
      out: { type: "string" },
      integration: { type: "string" },
      user: { type: "string", default: "ada@example.com" },
      "timeout-ms": { type: "string", default: "20000" },
      chromium: { type: "string", default: process.env.KEYWAY_CHROMIUM || "/usr/bin/chromium" },
      "wrong-fields": { type: "string" },
      fields: { type: "string" },
    },
  }).values;
} catch (e) {
  fail("arguments", e.message);
}
if (!args.url || !args.out) fail("arguments", "usage: node connect.mjs --url CONNECT_URL --out DIR");
const timeout = Number(args["timeout-ms"]);
if (!Number.isFinite(timeout) || timeout <= 0) fail("arguments", `--timeout-ms must be a positive number`);

const nodeDir = process.env.KEYWAY_NODE_DIR || resolve(here, "../../../../target/node");
let chromium;
try {
  chromium = createRequire(join(nodeDir, "package.json"))("playwright-core").chromium;
} catch (e) {
  fail("setup", `playwright-core is not installed in ${nodeDir} (run scripts/test-deps.sh): ${e.message}`);
}
if (!existsSync(args.chromium)) fail("setup", `no browser at ${args.chromium} (run scripts/test-deps.sh)`);

const out = resolve(args.out);
mkdirSync(out, { recursive: true });
const shots = {};
const consoleErrors = [];
let step = "launch";

// The whole run is bounded, whatever hangs.
const watchdog = setTimeout(async () => {
  process.stderr.write(`connect.mjs: FAILED at ${step}: the run took longer than ${(6 * timeout) / 1000} s\n`);
  await Promise.race([context?.close(), new Promise((r) => setTimeout(r, 3000))]).catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  process.exit(1);
}, 6 * timeout);

// A failed check inside the run: the catch below screenshots, closes the browser and exits 1.
function die(message) {
  throw new Error(message);
}

const profile = mkdtempSync(join(tmpdir(), "keyway-chromium-"));
let context;
let page;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: args.chromium,
    headless: true,
    chromiumSandbox: false,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1280, height: 800 },
    timeout,
  });
  context.setDefaultTimeout(timeout);
  context.setDefaultNavigationTimeout(timeout);
  // The page's timers (the done page's return redirect) run on a clock this script controls.
  await context.clock.install();

  page = context.pages()[0] ?? (await context.newPage());
  const watch = (p) => {
    p.on("console", (m) => m.type() === "error" && consoleErrors.push(`${m.location()?.url || p.url()}: ${m.text()}`));
    p.on("pageerror", (e) => consoleErrors.push(`${p.url()}: ${e.message}`));
  };
  watch(page);

  step = "open the connect link";
  const opened = await page.goto(args.url, { waitUntil: "load" });
  await refuseHubError(page);
  if (!opened || !opened.ok()) die(`HTTP ${opened?.status()} at ${page.url()}: ${await bodyText(page)}`);
  const hub = new URL(page.url());
  if (hub.pathname !== "/connect" || hub.search !== "")
    die(`expected the token-free /connect after the redirect, got ${page.url()}`);
  const section = args.integration ? `#integration-${args.integration}` : "section.integration";
  await page.locator(section).first().waitFor({ state: "visible" });
  const connectTitle = await page.title();
  const connectH1 = (await page.locator("h1").first().innerText()).trim();
  const integrations = await page.locator("section.integration h2").allInnerTexts();
  const connectOverflow = await overflow(page);
  shots.connect = await shoot(page, "connect.png");
  // The same page with every <details> (the requested permissions) open.
  await page.locator("details").evaluateAll((all) => all.forEach((d) => (d.open = true)));
  shots.connect_details = await shoot(page, "connect-details.png");
  await page.locator("details").evaluateAll((all) => all.forEach((d) => (d.open = false)));

  step = "the connect page at phone width";
  const phone = await context.newPage();
  watch(phone);
  await phone.setViewportSize({ width: 390, height: 844 });
  const phoneOpened = await phone.goto(new URL("/connect", hub).href, { waitUntil: "load" });
  if (!phoneOpened || !phoneOpened.ok()) die(`HTTP ${phoneOpened?.status()}: ${await bodyText(phone)}`);
  await phone.locator(section).first().waitFor({ state: "visible" });
  const connectPhoneOverflow = await overflow(phone);
  shots.connect_phone = await shoot(phone, "connect-phone.png");
  await phone.close();

  let consentUrl = null;
  let buttonText;
  let refused = null;
  if (args.fields) {
    const fill = async (json) => {
      for (const [name, value] of Object.entries(JSON.parse(json))) {
        await page.locator(`${section} [name="field.${name}"]`).fill(value);
      }
    };
    const submit = async () => {
      const button = page.locator(`${section} button[type=submit]`).first();
      buttonText = (await button.innerText()).trim();
      await Promise.all([page.waitForEvent("framenavigated", (f) => f === page.mainFrame()), button.click()]);
      await page.waitForLoadState("load");
    };
    step = "send credentials the provider refuses";
    await fill(args["wrong-fields"] || "{}");
    await submit();
    await refuseHubError(page);
    const alert = (await page.locator("p.alert").first().innerText().catch(() => "")).trim();
    if (!alert) die(`no refusal shown after wrong credentials: ${await bodyText(page)}`);
    const secretValues = await page.locator(`${section} input[type=password]`).evaluateAll((all) => all.map((i) => i.value));
    const fieldErrors = await page.locator(`${section} .field.invalid`).count();
    refused = { alert, secret_values: secretValues, field_errors: fieldErrors, overflow_px: await overflow(page) };
    shots.connect_refused = await shoot(page, "connect-refused.png");
    await page.setViewportSize({ width: 390, height: 844 });
    refused.phone_overflow_px = await overflow(page);
    shots.connect_refused_phone = await shoot(page, "connect-refused-phone.png");
    await page.setViewportSize({ width: 1280, height: 800 });

    step = "send the right credentials";
    await context.clock.pauseAt(Date.now() + 1000);
    await fill(args.fields);
    await submit();
  } else {
    step = "continue to the provider";
    // From here on, timers fire only when this script says so (the done page redirects after 2.5 s).
    await context.clock.pauseAt(Date.now() + 1000);
    const button = page.locator(`${section} button[type=submit]`).first();
    buttonText = (await button.innerText()).trim();
    await Promise.all([page.waitForEvent("framenavigated", (f) => f === page.mainFrame()), button.click()]);
    await page.waitForLoadState("load");
    await refuseHubError(page);
    if (new URL(page.url()).origin === hub.origin) die(`still on the hub after Continue: ${page.url()}: ${await bodyText(page)}`);

    step = "the provider's consent page";
    const allow = page.locator("#allow");
    await allow.waitFor({ state: "visible" });
    consentUrl = page.url();
    const username = page.locator("input[name=testkit_username]");
    if (args.user && (await username.count())) await username.fill(args.user);
    shots.consent = await shoot(page, "consent.png");

    step = "allow access";
    const callbackPath = /\/v1\/connect\/oauth2\/[^/]+\/callback$/;
    await Promise.all([
      page.waitForURL((u) => u.origin === hub.origin && callbackPath.test(u.pathname), { waitUntil: "load" }),
      allow.click(),
    ]);
  }

  step = "the done page";
  await refuseHubError(page);
  await page.locator("main h1").waitFor({ state: "visible" });
  const doneUrl = page.url();
  const doneTitle = await page.title();
  const h1 = (await page.locator("main h1").innerText()).trim();
  const connectionId = (await page.locator("main .meta code").first().innerText().catch(() => "")).trim();
  const result = JSON.parse((await page.locator("#result").getAttribute("data-result").catch(() => null)) || "{}");
  const returnHref = await page.locator("#return").getAttribute("href").catch(() => null);
  const doneOverflow = await overflow(page);
  shots.done = await shoot(page, "done.png");
  await page.setViewportSize({ width: 390, height: 844 });
  const donePhoneOverflow = await overflow(page);
  shots.done_phone = await shoot(page, "done-phone.png");
  await page.setViewportSize({ width: 1280, height: 800 });
  if (!connectionId) die(`no connection id on the done page (h1: ${h1})`);

  // The done page returns to the platform by itself (no opener here): a stand-in answers.
  let returned = null;
  if (returnHref) {
    step = "the return to the application";
    const target = new URL(returnHref);
    await context.route(
      (u) => u.origin === target.origin,
      (route) =>
        route.fulfill({
          status: 200,
          contentType: "text/html",
          body: "<!doctype html><title>platform</title><h1>Back in the application</h1>",
        }),
    );
    await Promise.all([
      page.waitForURL((u) => u.origin === target.origin, { waitUntil: "load" }),
      context.clock.runFor(3000),
    ]);
    returned = page.url();
  }

  clearTimeout(watchdog);
  const report = {
    ok: true,
    connect: {
      url: hub.href,
      title: connectTitle,
      h1: connectH1,
      integrations,
      button: buttonText,
      overflow_px: connectOverflow,
      phone_overflow_px: connectPhoneOverflow,
    },
    consent_url: consentUrl,
    refused,
    done: {
      url: doneUrl,
      title: doneTitle,
      h1,
      connection_id: connectionId,
      result,
      return_href: returnHref,
      overflow_px: doneOverflow,
      phone_overflow_px: donePhoneOverflow,
    },
    final_url: page.url(),
    returned_to: returned,
    console_errors: consoleErrors,
    screenshots: shots,
    elapsed_ms: Date.now() - started,
  };
  process.stdout.write(JSON.stringify(report) + "\n");
} catch (e) {
  if (page) await page.screenshot({ path: join(out, "failure.png"), fullPage: true }).catch(() => {});
  const where = page ? ` (page ${page.url()}; failure.png in ${out})` : "";
  const errors = consoleErrors.length ? `; browser errors: ${consoleErrors.join(" | ")}` : "";
  await context?.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  fail(step, `${e.message.split("\n")[0]}${where}${errors}`);
}
await context.close().catch(() => {});
rmSync(profile, { recursive: true, force: true });
process.exit(0);

async function shoot(p, name) {
  const path = join(out, name);
  await p.screenshot({ path, fullPage: true });
  return path;
}

// How many pixels the page is wider than the window (0: no horizontal scrolling).
async function overflow(p) {
  return p.evaluate(() => Math.max(0, document.documentElement.scrollWidth - window.innerWidth));
}

// A hub error page (the red ×) ends the run with what it says.
async function refuseHubError(p) {
  if (!(await p.locator("main .status.bad").count())) return;
  const heading = (await p.locator("main h1").innerText().catch(() => "")).trim();
  const message = (await p.locator("main .lead").innerText().catch(() => "")).trim();
  const code = (await p.locator("main .meta code").innerText().catch(() => "")).trim();
  die(`the hub showed an error page at ${p.url()}: "${heading}: ${message}" (code ${code})`);
}

async function bodyText(p) {
  return (await p.locator("body").innerText().catch(() => "")).slice(0, 300).replace(/\s+/g, " ");
}
