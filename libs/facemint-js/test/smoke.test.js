// The acceptance smoke of issue 15, with a client generated from the OpenAPI document alone, against a running
// platform. tests/e2e/test_sdk.py starts the platform and runs `node --test` with:
//   FACEMINT_URL, FACEMINT_API_KEY: the gateway and a key;
//   FACEMINT_TEST_MEDIA: JSON {"photo": local path, "face_a"/"face_a2": URLs of one person, "face_b": URL of
//   another, "video": URL of a long video} (no file is needed for the signature test).
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { readFile } from "node:fs/promises";
import { describe, test } from "node:test";

import { createFacemintClient, FacemintError, signWebhook, unwrap, verifyWebhook } from "../src/index.js";

const { FACEMINT_URL, FACEMINT_API_KEY, FACEMINT_TEST_MEDIA } = process.env;
const platform = FACEMINT_URL && FACEMINT_API_KEY && FACEMINT_TEST_MEDIA;

describe("against the platform", { skip: !platform && "FACEMINT_URL, FACEMINT_API_KEY, FACEMINT_TEST_MEDIA unset" }, () => {
  const fm = platform ? createFacemintClient({ baseUrl: FACEMINT_URL, apiKey: FACEMINT_API_KEY }) : null;
  const media = platform ? JSON.parse(FACEMINT_TEST_MEDIA) : {};

  test("create a task from an upload, wait for it, find it in the list", async () => {
    const uploaded = await fm.upload(await readFile(media.photo), { type: "image", filename: "group.jpg" });
    const created = unwrap(
      await fm.api.POST("/v1/create-detection-task", {
        body: { type: "image", media_url: uploaded.media_url, attributes: ["age", "gender"], metadata: { js: 1 } },
        headers: { "Idempotency-Key": crypto.randomUUID() },
      }),
    );
    assert.equal(created.status, "queued");
    const task = await fm.waitForTask(created.task_id, { timeoutMs: 300_000 });
    assert.equal(task.status, "succeeded", JSON.stringify(task.error));
    const faces = task.result.frames[0].faces;
    assert.equal(faces.length, 6);
    assert.ok(faces.every((f) => f.bbox.length === 4 && typeof f.attributes.age === "number"));
    const page = unwrap(await fm.api.GET("/v1/tasks", { params: { query: { status: "succeeded", limit: 100 } } }));
    assert.ok(page.tasks.some((t) => t.task_id === created.task_id));
  });

  test("cancel a running video task; a second cancel is a conflict", async () => {
    const created = unwrap(
      await fm.api.POST("/v1/create-detection-task", { body: { type: "video", media_url: media.video, sample_rate: 10 } }),
    );
    const path = { params: { path: { task_id: created.task_id } } };
    const cancelled = unwrap(await fm.api.POST("/v1/task/{task_id}/cancel", path));
    assert.equal(cancelled.status, "cancelled");
    assert.equal((await fm.waitForTask(created.task_id)).status, "cancelled");
    const again = await fm.api.POST("/v1/task/{task_id}/cancel", path);
    assert.throws(() => unwrap(again), (e) => e instanceof FacemintError && e.status === 409 && e.code === "conflict");
  });

  test("enrol a person in a library, then recognise them", async () => {
    const libraryId = `js-${Date.now()}`;
    unwrap(await fm.api.POST("/v1/library", { body: { library_id: libraryId, name: "JS smoke" } }));
    const library = { params: { path: { library_id: libraryId } } };
    const face = unwrap(
      await fm.api.POST("/v1/library/{library_id}/face", {
        ...library,
        body: { person_id: "p_a", name: "Person A", image_url: media.face_a },
      }),
    );
    assert.equal(face.person_id, "p_a");
    const persons = unwrap(await fm.api.GET("/v1/library/{library_id}/persons", library));
    assert.deepEqual(persons.persons.map((p) => p.person_id), ["p_a"]);
    const created = unwrap(
      await fm.api.POST("/v1/create-detection-task", {
        body: { type: "image", media_url: media.face_a2, recognize: 1, library_id: libraryId },
      }),
    );
    const task = await fm.waitForTask(created.task_id);
    assert.equal(task.status, "succeeded", JSON.stringify(task.error));
    const [match] = task.result.frames[0].faces[0].identity.matches;
    assert.equal(match.person_id, "p_a");
    assert.equal(match.name, "Person A");
    unwrap(await fm.api.DELETE("/v1/library/{library_id}", library));
  });

  test("compare: same person and different people", async () => {
    const compare = async (a, b) =>
      unwrap(await fm.api.POST("/v1/compare", { body: { source_image_url: a, target_image_url: b } }));
    const same = await compare(media.face_a, media.face_a2);
    const different = await compare(media.face_a, media.face_b);
    assert.equal(same.is_same_person, true);
    assert.equal(different.is_same_person, false);
    assert.ok(same.score > different.score);
  });

  test("errors come back as FacemintError with the envelope's code", async () => {
    const missing = await fm.api.GET("/v1/task/{task_id}", { params: { path: { task_id: "task_000000000000000000000000" } } });
    assert.throws(() => unwrap(missing), (e) => e instanceof FacemintError && e.status === 404 && e.code === "not_found");
  });
});

test("verifyWebhook accepts the signature of timestamp.body and refuses tampering and replays", () => {
  const body = JSON.stringify({ event: "task.completed", task_id: "task_1", status: "succeeded", result: {} });
  const now = 1_800_000_000;
  const headers = { "x-facemint-timestamp": String(now), "x-facemint-signature": signWebhook("whsec_a", now, body) };
  assert.equal(verifyWebhook("whsec_a", headers, body, { now }).task_id, "task_1");
  const capitalised = { "X-Facemint-Timestamp": String(now), "X-Facemint-Signature": headers["x-facemint-signature"] };
  assert.equal(verifyWebhook("whsec_a", capitalised, body, { now }).event, "task.completed");
  assert.equal(verifyWebhook(["whsec_new", "whsec_a"], new Headers(headers), Buffer.from(body), { now }).status, "succeeded");
  assert.throws(() => verifyWebhook("whsec_b", headers, body, { now }), /signature/);
  assert.throws(() => verifyWebhook("whsec_a", headers, body.replace("task_1", "task_2"), { now }), /signature/);
  assert.throws(() => verifyWebhook("whsec_a", headers, body, { now: now + 301 }), /timestamp/);
  // An HMAC of the body alone (without the timestamp) is not the signature.
  const bodyOnly = { ...headers, "x-facemint-signature": createHmac("sha256", "whsec_a").update(body).digest("hex") };
  assert.throws(() => verifyWebhook("whsec_a", bodyOnly, body, { now }), /signature/);
});
