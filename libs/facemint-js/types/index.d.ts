/**
 * The data of an openapi-fetch answer, or a thrown {@link FacemintError} for an error answer.
 * @template T
 * @param {{ data?: T, error?: unknown, response: Response }} result
 * @returns {T}
 */
export function unwrap<T>(result: {
    data?: T;
    error?: unknown;
    response: Response;
}): T;
/**
 * A client of the Facemint API.
 * @param {{ baseUrl: string, apiKey: string, fetch?: typeof globalThis.fetch }} options
 */
export function createFacemintClient({ baseUrl, apiKey, fetch }: {
    baseUrl: string;
    apiKey: string;
    fetch?: typeof globalThis.fetch;
}): {
    api: import("openapi-fetch").Client<import("../types/schema.js").paths, `${string}/${string}`>;
    waitForTask: (taskId: string, { timeoutMs }?: {
        timeoutMs?: number;
    }) => Promise<Task>;
    upload: (data: Blob | Uint8Array, { type, filename }: {
        type: TaskType;
        filename?: string;
    }) => Promise<UploadCreated>;
};
/** Signature of a webhook body: hex HMAC-SHA256, keyed by the webhook secret, of `timestamp + "." + body`.
 * @param {string} secret
 * @param {string | number} timestamp
 * @param {Uint8Array | string} body
 */
export function signWebhook(secret: string, timestamp: string | number, body: Uint8Array | string): string;
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
export function verifyWebhook(secret: string | string[], headers: Record<string, string | string[] | undefined> | Headers, body: Uint8Array | string, { toleranceSeconds, now }?: {
    toleranceSeconds?: number;
    now?: number;
}): {
    event: string;
    task_id: string;
    status: string;
    result: Task;
};
/** The longest long poll (`GET /v1/task/{task_id}?wait=`) the API documents, in seconds. */
export const MAX_WAIT_SECONDS: 30;
/** An error answer of the API (its envelope's code and message). */
export class FacemintError extends Error {
    /**
     * @param {number} status HTTP status.
     * @param {string} code The envelope's code (`not_found`, `rate_limited`, ...).
     * @param {string} message The envelope's message.
     * @param {string} [requestId] The request id to quote to support.
     */
    constructor(status: number, code: string, message: string, requestId?: string);
    status: number;
    code: string;
    requestId: string;
}
export type paths = import("../types/schema.js").paths;
export type Task = paths["/v1/task/{task_id}"]["get"]["responses"][200]["content"]["application/json"];
export type UploadCreated = paths["/v1/uploads"]["post"]["responses"][201]["content"]["application/json"];
export type TaskType = "image" | "gif" | "video";
