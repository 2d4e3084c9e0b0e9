// @ts-check
/**
 * Facemint's JavaScript/TypeScript client: `openapi-fetch` over the types that `openapi-typescript` generates from
 * the API's OpenAPI document (`types/schema.d.ts`, `make sdk`), plus a thin hand-written layer: long-poll waiting,
 * uploads of local bytes, and webhook signature verification.
 *
 * @example
 * import { createFacemintClient } from "@facemint/client";
 * const fm = createFacemintClient({ baseUrl: "http://127.0.0.1:8080", apiKey: process.env.FACEMINT_API_KEY });
 * const { data } = await fm.api.POST("/v1/create-detection-task", { body: { type: "image", media_url: url } });
 * const task = await fm.waitForTask(data.task_id);
 *
 * @module
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import createClient from "openapi-fetch";

/** @typedef {import("../types/schema.js").paths} paths */
// Types by operation, not by schema name, so that they survive a renamed schema in the document.
/** @typedef {paths["/v1/task/{task_id}"]["get"]["responses"][200]["content"]["application/json"]} Task */
/** @typedef {paths["/v1/uploads"]["post"]["responses"][201]["content"]["application/json"]} UploadCreated */
/** @typedef {"image" | "gif" | "video"} TaskType */

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
/** The longest long poll (`GET /v1/task/{task_id}?wait=`) the API documents, in seconds. */
export const MAX_WAIT_SECONDS = 30;

/** An error answer of the API (its envelope's code and message). */
export class FacemintError extends Error {
  /**
   * @param {number} status HTTP status.
   * @param {string} code The envelope's code (`not_found`, `rate_limited`, ...).
   * @param {string} message The envelope's message.
   * @param {string} [requestId] The request id to quote to support.
   */
  constructor(status, code, message, requestId = "") {
    super(`${status} ${code}: ${message}`);
    this.name = "FacemintError";
    this.status = status;
    this.code = code;
    this.requestId = requestId;
  }
}

/**
 * The data of an openapi-fetch answer, or a thrown {@link FacemintError} for an error answer.
 * @template T
 * @param {{ data?: T, error?: unknown, response: Response }} result
 * @returns {T}
 */
export function unwrap(result) {
  if (result.error !== undefined || result.data === undefined) {
    const envelope = /** @type {{ error?: { code?: string, message?: string, request_id?: string } }} */ (
      result.error ?? {}
    ).error ?? {};
    throw new FacemintError(
      result.response.status,
      envelope.code ?? `http_${result.response.status}`,
      envelope.message ?? result.response.statusText,
      envelope.request_id ?? "",
    );
  }
  return result.data;
}

/**
 * A client of the Facemint API.
 * @param {{ baseUrl: string, apiKey: string, fetch?: typeof globalThis.fetch }} options
 */
export function createFacemintClient({ baseUrl, apiKey, fetch = globalThis.fetch }) {
  /** @type {import("openapi-fetch").Client<paths>} */
  const typed = createClient({ baseUrl: baseUrl.replace(/\/$/, ""), headers: { "x-api-key": apiKey }, fetch });

  /**
   * Long-poll a task until it succeeds, fails or is cancelled.
   * @param {string} taskId
   * @param {{ timeoutMs?: number }} [options]
   * @returns {Promise<Task>}
   */
  async function waitForTask(taskId, { timeoutMs = 600_000 } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const wait = Math.max(0.001, Math.min(MAX_WAIT_SECONDS, (deadline - Date.now()) / 1000));
      const task = unwrap(
        await typed.GET("/v1/task/{task_id}", { params: { path: { task_id: taskId }, query: { wait } } }),
      );
      if (task.status && TERMINAL.has(task.status)) return task;
      if (Date.now() >= deadline) throw new Error(`task ${taskId} still ${task.status} after ${timeoutMs} ms`);
    }
  }

  /**
   * Upload bytes through a presigned upload; its `media_url` goes into a task, an enrolment or a compare.
   * The bytes go to the object store's form endpoint, without the API key.
   * @param {Blob | Uint8Array} data
   * @param {{ type: TaskType, filename?: string }} options
   * @returns {Promise<UploadCreated>}
   */
  async function upload(data, { type, filename = "media" }) {
    const created = unwrap(await typed.POST("/v1/uploads", { body: { type, filename } }));
    if (!created.upload_url || !created.fields || !created.media_url) {
      throw new Error("upload answer lacks upload_url, fields or media_url");
    }
    const form = new FormData();
    for (const [name, value] of Object.entries(created.fields)) form.append(name, value);
    form.append("file", data instanceof Blob ? data : new Blob([/** @type {BlobPart} */ (data)]), filename);
    const sent = await fetch(created.upload_url, { method: "POST", body: form });
    if (!sent.ok) throw new FacemintError(sent.status, "upload_failed", (await sent.text()).slice(0, 300));
    return created;
  }

  return { api: typed, waitForTask, upload };
}

/** Signature of a webhook body: hex HMAC-SHA256, keyed by the webhook secret, of `timestamp + "." + body`.
 * @param {string} secret
 * @param {string | number} timestamp
 * @param {Uint8Array | string} body
 */
export function signWebhook(secret, timestamp, body) {
  return createHmac("sha256", secret).update(`${timestamp}.`).update(body).digest("hex");
}

/**
 * Verify a webhook delivery and return its parsed body; throws when the signature does not match (neither
 * `X-Facemint-Signature` nor, during a secret rotation, `X-Facemint-Signature-Previous`) or the timestamp is more
 * than `toleranceSeconds` away from now (a replay). Give it the raw body, before any JSON parsing.
 * @param {string | string[]} secret The webhook secret, or several accepted secrets.
 * @param {Record<string, string | string[] | undefined> | Headers} headers
 * @param {Uint8Array | string} body
 * @param {{ toleranceSeconds?: number, now?: number }} [options] `now` in Unix seconds.
 * @returns {{ event: string, task_id: string, status: string, result: Task }}
 */
export function verifyWebhook(secret, headers, body, { toleranceSeconds = 300, now = Date.now() / 1000 } = {}) {
  const lowered = headers instanceof Headers ? headers : new Map(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  /** @param {string} name */
  const header = (name) => {
    const value = lowered.get(name);
    return (Array.isArray(value) ? value[0] : value) ?? "";
  };
  const timestamp = header("x-facemint-timestamp");
  if (!/^\d+$/.test(timestamp)) throw new Error("missing or malformed X-Facemint-Timestamp");
  if (Math.abs(now - Number(timestamp)) > toleranceSeconds) {
    throw new Error("timestamp too far from now (replayed or delayed delivery)");
  }
  const received = ["x-facemint-signature", "x-facemint-signature-previous"].map(header).filter(Boolean);
  const ok = (Array.isArray(secret) ? secret : [secret]).some((s) => {
    const expected = Buffer.from(signWebhook(s, timestamp, body));
    return received.some((r) => r.length === expected.length && timingSafeEqual(Buffer.from(r), expected));
  });
  if (!ok) throw new Error("signature does not match");
  return JSON.parse(typeof body === "string" ? body : Buffer.from(body).toString("utf8"));
}
