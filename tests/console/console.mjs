// The on-call nurse works a session through the console in real headless Chromium (Debian's, driven
// by playwright-core): sees it waiting, claims it, replies, and hands it back to a rung.
// Then approves a tool call waiting for approval.
// Run by tests/console.rs: node console.mjs URL TOKEN SESSION REPLY RELEASE_TO SCREENSHOTS_DIR APPROVAL
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { chromium } = require(process.env.LADDER_PLAYWRIGHT ?? "playwright-core");
const [url, token, session, reply, releaseTo, shots, approval] = process.argv.slice(2);

const browser = await chromium.launch({
  executablePath: process.env.LADDER_CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
const failures = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("pageerror", (e) => failures.push("page error: " + e.message));
  // A request the server refuses is logged by the browser (the 401 before the token is given
  // is expected); what fails the test is an error of the page's own script.
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) failures.push("console: " + m.text());
  });
  page.setDefaultTimeout(15000);
  await page.goto(url + "/console");
  await page.fill("#token", token);
  await page.fill("#operator", "ana");
  await page.click("#token-form button[type=submit]");

  // The waiting session is listed in its queue, with a Claim button.
  const row = page.locator(`#handovers tr[data-session="${session}"]`);
  await row.waitFor();
  await page.screenshot({ path: `${shots}/console-queue.png` });
  await row.locator("button.claim").click();
  await page.locator("#reply-form").waitFor({ state: "visible" });
  await page.locator("#held", { hasText: "claimed by ana" }).waitFor();
  // The map shows the human as the current rung.
  await page.locator("#map g.current.human").waitFor();

  await page.fill("#reply", reply);
  await page.click("#reply-form button[type=submit]");
  await page.locator("#transcript li.person", { hasText: reply }).waitFor();
  await page.screenshot({ path: `${shots}/console-session.png` });

  await page.selectOption("#release-to", releaseTo);
  await page.fill("#release-note", "advised rest");
  await page.click("#release-form button[type=submit]");
  await page.locator("#status", { hasText: `Handed to ${releaseTo}.` }).waitFor();
  await page.locator("#current", { hasText: releaseTo }).waitFor();
  await page.locator(`#map g.current[data-rung="${releaseTo}"]`).waitFor();
  await page.locator("#handovers", { hasText: "No one is waiting." }).waitFor();
  await page.screenshot({ path: `${shots}/console-released.png` });

  // A refund waits for approval: approve it.
  const pending = page.locator(`#approvals tr[data-approval="${approval}"]`);
  await pending.waitFor();
  await pending.locator("button.approve").click();
  await page.locator("#status", { hasText: "Approved refill_prescription." }).waitFor();
  await page.locator("#approvals", { hasText: "Nothing waits for approval." }).waitFor();
} catch (e) {
  failures.push(String(e && e.stack || e));
} finally {
  await browser.close();
}
if (failures.length) {
  console.error(failures.join("\n"));
  process.exit(1);
}
console.log("console ok");
