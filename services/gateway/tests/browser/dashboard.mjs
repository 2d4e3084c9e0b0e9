// Drives the dashboard in headless Debian Chromium; run by test_dashboard_browser.py, which prepares the account.
//
// Environment: BASE_URL (a gateway), API_KEY (the account's key), RESULT_TASK_ID (a succeeded task with faces),
// RESULT_FACES (how many faces its first frame holds), BOX_PIXEL ("x,y" on a box edge, in displayed pixels),
// UPLOAD_FILE (an image to upload through the signed upload flow), SCREENSHOT_DIR.
// Prints one JSON line with what it did; exits non-zero on the first failed expectation.
import { chromium } from "playwright-core";

const env = process.env;
const base = env.BASE_URL;
const out = {};

function expect(condition, message) {
  if (!condition) throw new Error(`expectation failed: ${message}`);
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
    "--disable-component-update", "--disable-sync",
  ],
});
const errors = [];
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 1000 } });
  page.on("pageerror", (err) => errors.push(String(err)));
  page.on("console", (msg) => {
    // Refused API calls (the wrong key, the task limit) are expected and logged by Chromium as resource errors.
    if (msg.type() === "error" && !msg.text().startsWith("Failed to load resource")) errors.push(msg.text());
  });
  page.setDefaultTimeout(15000);

  // Sign in: a wrong key is refused, the account's key is accepted.
  await page.goto(`${base}/dashboard`);
  await page.waitForSelector("body[data-ready='1']");
  await page.fill("#signin-key", "fm_aaaaaaaa_" + "a".repeat(32));
  await page.click("#signin-form button");
  await page.waitForFunction(() => document.getElementById("signin-error").textContent.includes("not valid"));
  await page.fill("#signin-key", env.API_KEY);
  await page.click("#signin-form button");
  await page.waitForSelector("#app:not([hidden])");
  out.who = await page.textContent("#who");
  out.plan = await page.textContent("#plan");
  out.minutes = await page.textContent("#meter-minutes .value");
  expect(out.plan === "free", `plan shown: ${out.plan}`);

  // Keys: create, rotate (two clicks: arm, confirm), revoke.
  await page.waitForSelector("#keys-table tbody tr");
  expect((await page.locator("#keys-table tbody tr").count()) === 1, "one key listed at first");
  await page.fill("#key-name", "browser");
  await page.click("#key-form button[type=submit]");
  await page.waitForSelector("#new-key:not([hidden])");
  out.createdKey = (await page.textContent("#new-key-value")).trim();
  expect(/^fm_[a-z2-7]{8}_[a-z2-7]{32}$/.test(out.createdKey), `created key shown: ${out.createdKey}`);
  await page.waitForFunction(() => document.querySelectorAll("#keys-table tbody tr").length === 2);
  const createdPrefix = out.createdKey.split("_").slice(0, 2).join("_");
  const createdRow = page.locator("#keys-table tbody tr", { hasText: createdPrefix });
  out.createdKeyId = await createdRow.getAttribute("data-key-id");
  await page.fill("#grace", "3600");
  await createdRow.getByRole("button", { name: "Rotate" }).click();
  await createdRow.getByRole("button", { name: "Confirm rotate" }).click();
  await page.waitForFunction(() => document.querySelectorAll("#keys-table tbody tr").length === 3);
  out.rotatedKey = (await page.textContent("#new-key-value")).trim();
  expect(out.rotatedKey !== out.createdKey, "rotation shows a new key");
  expect((await page.textContent("#new-key-note")).includes("keeps working until"), "grace period explained");
  const oldRow = page.locator(`#keys-table tbody tr[data-key-id="${out.createdKeyId}"]`);
  expect((await oldRow.getAttribute("data-status")) === "rotated", "old key shown as rotated");
  const rotatedPrefix = out.rotatedKey.split("_").slice(0, 2).join("_");
  const rotatedRow = page.locator("#keys-table tbody tr", { hasText: rotatedPrefix });
  out.revokedKeyId = await rotatedRow.getAttribute("data-key-id");
  await rotatedRow.getByRole("button", { name: "Revoke" }).click();
  await rotatedRow.getByRole("button", { name: "Confirm revoke" }).click();
  await page.waitForSelector(`#keys-table tbody tr[data-key-id="${out.revokedKeyId}"][data-status="revoked"]`);
  await page.waitForSelector("#new-key", { state: "hidden" });  // a revoked secret is not left on screen

  // The result of a succeeded task: boxes and landmarks drawn over its image.
  await page.click("#refresh-tasks");
  const resultRow = page.locator(`#tasks-table tbody tr[data-task-id="${env.RESULT_TASK_ID}"]`);
  await resultRow.getByRole("button", { name: "View" }).click();
  await page.waitForSelector(`#result-overlay[data-faces="${env.RESULT_FACES}"]`);
  await page.waitForFunction(() => document.getElementById("result-image").complete);
  out.imageLoaded = await page.evaluate(() => document.getElementById("result-image").naturalWidth > 0);
  expect(out.imageLoaded, "the task's image loaded under the overlay");
  const [bx, by] = env.BOX_PIXEL.split(",").map(Number);
  out.overlay = await page.evaluate(([x, y]) => {
    const canvas = document.getElementById("result-overlay");
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let painted = 0;
    let landmark = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i + 3] > 0) painted += 1;
      if (data[i] > 200 && data[i + 1] < 120 && data[i + 2] > 80 && data[i + 3] > 200) landmark += 1;
    }
    const at = Array.from(canvas.getContext("2d").getImageData(x, y, 1, 1).data);
    return { width: canvas.width, height: canvas.height, painted, landmark, boxPixel: at };
  }, [bx, by]);
  const [r, g, b, a] = out.overlay.boxPixel;
  expect(a > 200 && g > 200 && r < 60 && b > 80 && b < 160, `box colour at the box edge: ${out.overlay.boxPixel}`);
  expect(out.overlay.landmark > 0, "landmarks drawn");
  out.summary = await page.textContent("#result-summary");
  await page.screenshot({ path: `${env.SCREENSHOT_DIR}/result.png`, fullPage: true });

  // A new task through the signed upload flow: a form POST to the object store (presigned policy), then the task.
  await page.setInputFiles("#task-file", env.UPLOAD_FILE);
  await page.click("#task-form button[type=submit]");
  await page.waitForFunction((known) => {
    const id = document.getElementById("result-id").textContent;
    return id && id !== known;
  }, env.RESULT_TASK_ID);
  out.uploadTaskId = await page.textContent("#result-id");
  out.uploadTaskStatus = await page.textContent("#result-status");
  out.uploadTaskJson = JSON.parse(await page.textContent("#result-json"));
  expect(["queued", "running"].includes(out.uploadTaskStatus), `new task status ${out.uploadTaskStatus}`);
  expect(await page.isHidden("#stage"), "no media stage before a result exists");
  expect((await page.textContent("#task-error")) === "", "no task error");
  await page.waitForFunction(() => document.querySelector("#meter-concurrent .value").textContent.startsWith("1 of"));

  // A new task from a media URL, and the usage meter counting both.
  await page.fill("#task-url", "http://127.0.0.1:9/elsewhere.jpg");
  await page.click("#task-form button[type=submit]");
  await page.waitForFunction((known) => document.getElementById("result-id").textContent !== known,
    out.uploadTaskId);
  out.urlTaskId = await page.textContent("#result-id");
  await page.waitForFunction(() => document.querySelector("#meter-concurrent .value").textContent === "2 of 2");
  await page.fill("#task-url", "http://127.0.0.1:9/third.jpg");
  await page.click("#task-form button[type=submit]");
  await page.waitForFunction(() => document.getElementById("task-error").textContent.includes("concurrent task limit"));
  out.limitMessage = await page.textContent("#task-error");
  await page.screenshot({ path: `${env.SCREENSHOT_DIR}/tasks.png`, fullPage: true });

  // Sign out.
  await page.click("#sign-out");
  await page.waitForSelector("#signin:not([hidden])");
  expect(await page.evaluate(() => sessionStorage.getItem("facemint.apiKey") === null), "key forgotten");
  expect(errors.length === 0, `no page errors: ${errors.join(" | ")}`);
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
}
