// Drives keyway serve's guide page (GET /guide/{profile}) in a real browser (Debian's chromium
// through playwright-core) as an admin would:
//
//   node guide.mjs --url PAGE_URL --out DIR [--timeout-ms 20000] [--chromium /usr/bin/chromium]
//
// 1. open the page, tick Publish Knowledge Article: the Knowledge prerequisite step appears
//    and the Scopes Selected panel names the action, in place (no navigation);
// 2. copy the Dynamic Guide URL with its button, open the copied URL in a fresh page: the
//    same guide;
// 3. switch to Sandbox: the sign-in link is https://test.salesforce.com;
// 4. choose "Sends no PKCE": the guide says to uncheck Require Proof Key for Code Exchange, as
//    the one change from the defaults (listed above the guide, marked in it);
// 5. tick the Case group's box: every Case action is ticked; clear one: the box shows "some";
// 6. a refused My Domain host: the refusal's code spans rendered, no raw backticks;
// 7. the same page with JavaScript off works as a form: tick, submit, the Knowledge step;
// 8. screenshots: guide-page.png (1280 px), guide-page-phone.png (390 px), full page; and
//    screen-sized views: guide-page-{top,security,refused}.png, guide-page-phone-{top,summary,security}.png.
//
// Prints one JSON line on stdout with what it saw; exits 1 with `guide.mjs: FAILED ...` on
// stderr at the first failure (with failure.png). Each step waits at most --timeout-ms; the
// whole run at most six times that.

import { createRequire } from "node:module";
import { mkdirSync, existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const here = dirname(fileURLToPath(import.meta.url));
let step = "arguments";

function fail(message) {
  process.stderr.write(`guide.mjs: FAILED at ${step}: ${message}\n`);
  process.exit(1);
}

let args;
try {
  args = parseArgs({
    options: {
      url: { type: "string" },
      out: { type: "string" },
      "timeout-ms": { type: "string", default: "20000" },
      chromium: { type: "string", default: process.env.KEYWAY_CHROMIUM || "/usr/bin/chromium" },
    },
  }).values;
} catch (e) {
  fail(e.message);
}
if (!args.url || !args.out) fail("usage: node guide.mjs --url PAGE_URL --out DIR");
const timeout = Number(args["timeout-ms"]);
if (!Number.isFinite(timeout) || timeout <= 0) fail("--timeout-ms must be a positive number");

const nodeDir = process.env.KEYWAY_NODE_DIR || resolve(here, "../../../../target/node");
let chromium;
try {
  chromium = createRequire(join(nodeDir, "package.json"))("playwright-core").chromium;
} catch (e) {
  step = "setup";
  fail(`playwright-core is not installed in ${nodeDir} (run scripts/test-deps.sh): ${e.message}`);
}
if (!existsSync(args.chromium)) fail(`no browser at ${args.chromium} (run scripts/test-deps.sh)`);

const out = resolve(args.out);
mkdirSync(out, { recursive: true });
const errors = [];
let browser;
let current;

const watchdog = setTimeout(async () => {
  process.stderr.write(`guide.mjs: FAILED at ${step}: the run took longer than ${(6 * timeout) / 1000} s\n`);
  await Promise.race([browser?.close(), new Promise((r) => setTimeout(r, 3000))]).catch(() => {});
  process.exit(1);
}, 6 * timeout);

function die(message) {
  throw new Error(message);
}

async function newPage(options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...options });
  context.setDefaultTimeout(timeout);
  const page = await context.newPage();
  page.on("console", (m) => m.type() === "error" && errors.push(`${page.url()}: ${m.text()}`));
  page.on("pageerror", (e) => errors.push(`${page.url()}: ${e.message}`));
  current = page;
  return page;
}

const guideHtml = (page) => page.locator(".keyway-guide").innerHTML();
const text = (page, selector) => page.locator(selector).innerText();
const overflow = (page) => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);

try {
  step = "launch";
  browser = await chromium.launch({
    executablePath: args.chromium,
    headless: true,
    chromiumSandbox: false,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"],
    timeout,
  });
  const origin = new URL(args.url).origin;

  step = "open the page";
  const page = await newPage({ permissions: ["clipboard-read", "clipboard-write"] });
  await page.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin });
  const opened = await page.goto(args.url, { waitUntil: "load" });
  if (!opened?.ok()) die(`HTTP ${opened?.status()}`);
  const heading = (await text(page, ".top h1")).trim();
  const tableHeading = (await text(page, "#actions-heading")).trim();
  const columns = await page.locator("table.actions thead th").allInnerTexts();
  const groups = await page.locator("table.actions tr.group th").allInnerTexts();
  const callback = await page.locator("#callback").inputValue();
  // The platform's choices come before the action rows (on a phone too, below).
  const platformFirst = async (p) =>
    (await p.locator("#pkce").boundingBox()).y < (await p.locator("table.actions").boundingBox()).y &&
    (await p.locator("#callback").boundingBox()).y < (await p.locator("table.actions").boundingBox()).y;
  if (!(await platformFirst(page))) die("the platform's choices are below the action rows");
  if ((await page.locator("#prerequisites-enable_knowledge").count()) !== 0)
    die("the Knowledge prerequisite is there before Knowledge is selected");
  const scopesBefore = await text(page, ".summary");
  // The page's first answer is the form's: the live script has not replaced anything yet.
  const liveBefore = await page.evaluate(() => document.getElementById("guide-result").dataset.seq || "");

  step = "tick Publish Knowledge Article";
  const urlBefore = page.url();
  await page.locator("#action-publish_knowledge_article").check();
  await page.locator("#prerequisites-enable_knowledge").waitFor({ state: "visible" });
  const knowledgeStep = (await text(page, "#prerequisites-enable_knowledge h3")).trim();
  const scopesAfter = await text(page, ".summary");
  if (scopesAfter === scopesBefore) die("the Scopes Selected panel did not change");
  if (!scopesAfter.includes("Publish Knowledge Article")) die(`the scopes do not name the action: ${scopesAfter}`);
  const liveAfter = await page.evaluate(() => document.getElementById("guide-result").dataset.seq || "");
  if (!liveAfter || liveAfter === liveBefore) die("the guide was not replaced in place by the script");
  const addressAfter = page.url();
  if (addressAfter === urlBefore || !addressAfter.includes("publish_knowledge_article"))
    die(`the address does not follow the selection: ${addressAfter}`);

  step = "copy the guide URL";
  await page.locator('button.copy[data-copy="guide-url"]').click();
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  const shown = (await text(page, "#guide-url")).trim();
  if (copied !== shown) die(`copied ${copied}, the page shows ${shown}`);
  if (!copied.includes("actions=publish_knowledge_article")) die(`the URL misses the selection: ${copied}`);
  const firstGuide = await guideHtml(page);

  step = "open the copied URL in a fresh page";
  const fresh = await newPage();
  const reopened = await fresh.goto(copied, { waitUntil: "load" });
  if (!reopened?.ok()) die(`HTTP ${reopened?.status()} for ${copied}`);
  const sameGuide = (await guideHtml(fresh)) === firstGuide;
  if (!sameGuide) die("the copied URL shows another guide");
  const freshTicked = await fresh.locator("#action-publish_knowledge_article").isChecked();
  if (!freshTicked) die("the copied URL's page does not tick the action");
  await fresh.context().close();
  current = page;

  step = "switch to sandbox";
  await page.locator('input[name="env"][value="sandbox"]').check();
  await page.locator('#create_app-sign_in a[href="https://test.salesforce.com"]').waitFor({ state: "visible" });
  const signIn = (await text(page, "#create_app-sign_in")).trim();

  step = "turn PKCE off";
  await page.locator("#pkce").selectOption("off");
  const uncheck = page.locator("#security-pkce li", { hasText: "Uncheck Require Proof Key for Code Exchange" });
  await uncheck.first().waitFor({ state: "visible" });
  const pkceText = (await uncheck.first().innerText()).trim();
  const changed = page.locator("#security-pkce li.change");
  if ((await changed.count()) !== 1) die(`the PKCE change is not marked: ${await changed.count()}`);
  const changes = (await text(page, ".changes")).trim();
  const marked = await page.evaluate(() => [...document.querySelectorAll("select.changed")].map((s) => s.id));
  if (marked.join() !== "pkce") die(`the changed choices marked: ${marked.join()}`);
  if ((await page.locator(".changes li").count()) !== 1) die(`not one change listed: ${changes}`);

  step = "tick the Case group";
  const caseBoxes = page.locator('tbody[data-group="Case"] input[name="actions"]');
  const caseCount = await caseBoxes.count();
  await page.locator("#group-Case").check();
  await page.waitForFunction(() => new URL(location.href).searchParams.get("actions")?.includes("search_cases"));
  for (let i = 0; i < caseCount; i++) if (!(await caseBoxes.nth(i).isChecked())) die("a Case action is not ticked");
  await page.locator("#action-search_cases").uncheck();
  await page.waitForFunction(() => !new URL(location.href).searchParams.get("actions")?.includes("search_cases"));
  const some = await page.locator("#group-Case").evaluate((b) => b.indeterminate && !b.checked);
  if (!some) die("the group's box does not show that some of its actions are ticked");
  await page.locator("#action-search_cases").check();
  await page.waitForFunction(() => new URL(location.href).searchParams.get("actions")?.includes("search_cases"));
  const all = await page.locator("#group-Case").evaluate((b) => b.checked && !b.indeterminate);
  if (!all) die("the group's box does not show that all its actions are ticked");
  await page.locator(".summary").getByText("Create Case").first().waitFor();
  const finalUrl = (await text(page, "#guide-url")).trim();
  if (!finalUrl.includes("env=sandbox") || !finalUrl.includes("pkce=off")) die(`the URL misses a choice: ${finalUrl}`);

  step = "screenshots";
  await page.screenshot({ path: join(out, "guide-page.png"), fullPage: true });
  // Screen-sized views too (a full page is too tall to judge at once): the top, the security
  // settings with their callouts.
  await page.evaluate(() => {
    window.scrollTo(0, 0);
    document.querySelector(".picker").scrollTop = 0;
  });
  await page.screenshot({ path: join(out, "guide-page-top.png") });
  await page.locator("#security").scrollIntoViewIfNeeded();
  await page.screenshot({ path: join(out, "guide-page-security.png") });
  const desktopOverflow = await overflow(page);
  const phone = await newPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const phoneOpened = await phone.goto(finalUrl, { waitUntil: "load" });
  if (!phoneOpened?.ok()) die(`HTTP ${phoneOpened?.status()} at phone width`);
  const phoneOverflow = await overflow(phone);
  const phonePlatformFirst = await platformFirst(phone);
  if (!phonePlatformFirst) die("on a phone the platform's choices are below the action rows");
  await phone.screenshot({ path: join(out, "guide-page-phone.png"), fullPage: true });
  await phone.screenshot({ path: join(out, "guide-page-phone-top.png") });
  await phone.locator(".summary").scrollIntoViewIfNeeded();
  await phone.screenshot({ path: join(out, "guide-page-phone-summary.png") });
  await phone.locator("#security").scrollIntoViewIfNeeded();
  await phone.screenshot({ path: join(out, "guide-page-phone-security.png") });
  if (phoneOverflow > 0) die(`the page is ${phoneOverflow} px wider than a 390 px phone`);
  await phone.context().close();

  step = "a refused My Domain host";
  // The refused fragment answers 400, which the browser reports on its console: expected here.
  const errorsBefore = errors.length;
  await page.locator("#param-my_domain").fill("https://acme.my.salesforce.com");
  await page.locator(".refused").waitFor({ state: "visible" });
  const refusedHtml = await page.locator(".refused ul").innerHTML();
  const refusedText = (await text(page, ".refused ul")).trim();
  if (!refusedHtml.includes("<code>https://</code>")) die(`the refusal's code is not rendered: ${refusedHtml}`);
  if (refusedText.includes("`")) die(`the refusal shows raw backticks: ${refusedText}`);
  await page.screenshot({ path: join(out, "guide-page-refused.png") });
  await page.locator("#param-my_domain").fill("");
  await page.locator(".summary").waitFor({ state: "visible" });
  errors.push(...errors.splice(errorsBefore).filter((e) => !e.includes("status of 400 (Bad Request)")));

  step = "without JavaScript, as a form";
  const plain = await newPage({ javaScriptEnabled: false });
  const plainOpened = await plain.goto(args.url, { waitUntil: "load" });
  if (!plainOpened?.ok()) die(`HTTP ${plainOpened?.status()}`);
  if (!(await plain.locator("button.update").isVisible())) die("no visible submit button without JavaScript");
  await plain.locator("#action-publish_knowledge_article").check();
  await Promise.all([plain.waitForNavigation({ waitUntil: "load" }), plain.locator("button.update").click()]);
  const plainHasStep = (await plain.locator("#prerequisites-enable_knowledge").count()) === 1;
  if (!plainHasStep) die(`the submitted form shows no Knowledge step (${plain.url()})`);
  const plainUrl = plain.url();
  await plain.context().close();

  if (errors.length) die(`console errors: ${errors.join("; ")}`);
  clearTimeout(watchdog);
  await browser.close();
  process.stdout.write(
    JSON.stringify({
      heading,
      table_heading: tableHeading,
      columns,
      groups,
      knowledge_step: knowledgeStep,
      scopes_after: scopesAfter,
      copied,
      same_guide: sameGuide,
      sign_in: signIn,
      pkce: pkceText,
      changes,
      callback,
      refused: refusedText,
      phone_platform_first: phonePlatformFirst,
      final_url: finalUrl,
      desktop_overflow: desktopOverflow,
      phone_overflow: phoneOverflow,
      plain_url: plainUrl,
      screenshots: [join(out, "guide-page.png"), join(out, "guide-page-phone.png")],
    }) + "\n",
  );
} catch (e) {
  try {
    await current?.screenshot({ path: join(out, "failure.png"), fullPage: true });
  } catch {}
  clearTimeout(watchdog);
  await browser?.close().catch(() => {});
  fail(e.message);
}
