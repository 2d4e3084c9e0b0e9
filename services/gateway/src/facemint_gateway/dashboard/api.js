// The public Facemint API, called with the signed-in API key.

/** An error answered by the API, in its error envelope. */
export class ApiError extends Error {
  constructor(status, code, message, requestId) {
    super(message);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
  }
}

export class Api {
  /** @param {string} key an API key (fm_...) */
  constructor(key) {
    this.key = key;
    /** The X-RateLimit-* headers of the latest response. */
    this.rate = null;
  }

  async request(method, path, body = undefined, headers = {}) {
    const init = { method, headers: { "x-api-key": this.key, ...headers } };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(path, init);
    if (resp.headers.has("x-ratelimit-limit")) {
      this.rate = {
        limit: Number(resp.headers.get("x-ratelimit-limit")),
        remaining: Number(resp.headers.get("x-ratelimit-remaining")),
        reset: Number(resp.headers.get("x-ratelimit-reset")),
      };
    }
    const text = await resp.text();
    let doc = null;
    try {
      doc = text ? JSON.parse(text) : null;
    } catch {
      doc = null;
    }
    if (!resp.ok) {
      const err = (doc && doc.error) || {};
      throw new ApiError(resp.status, err.code || `http_${resp.status}`, err.message || resp.statusText, err.request_id);
    }
    return doc;
  }

  usage() { return this.request("GET", "/v1/usage"); }
  listKeys() { return this.request("GET", "/v1/keys"); }
  createKey(name) { return this.request("POST", "/v1/keys", name ? { name } : {}); }
  rotateKey(keyId, graceSeconds) {
    return this.request("POST", `/v1/keys/${encodeURIComponent(keyId)}/rotate`, { grace_seconds: graceSeconds });
  }
  revokeKey(keyId) { return this.request("POST", `/v1/keys/${encodeURIComponent(keyId)}/revoke`); }
  listTasks(limit = 10) { return this.request("GET", `/v1/tasks?limit=${limit}`); }
  getTask(taskId) { return this.request("GET", `/v1/task/${encodeURIComponent(taskId)}`); }

  /** Create a detection task; the Idempotency-Key makes a retried submission safe. */
  createTask(spec) {
    return this.request("POST", "/v1/create-detection-task", spec, { "idempotency-key": crypto.randomUUID() });
  }

  /** Ask for a presigned upload (POST /v1/uploads); returns {upload_url, fields, max_bytes, media_url, ...}. */
  createUpload(type, filename) { return this.request("POST", "/v1/uploads", { type, filename }); }
}

/**
 * POST a file to the object store as a form upload with the presigned policy's fields (straight to the store, not
 * through the gateway); the store refuses a file over the policy's size limit, so it is checked here first.
 */
export async function uploadFile(upload, file) {
  if (file.size > upload.max_bytes) {
    throw new ApiError(413, "payload_too_large",
      `the file is ${file.size} bytes; a ${upload.type} upload may have at most ${upload.max_bytes}`, "");
  }
  const form = new FormData();
  for (const [name, value] of Object.entries(upload.fields)) form.append(name, value);
  form.append("file", file);  // after the policy's fields, as S3 requires
  const resp = await fetch(upload.upload_url, { method: "POST", body: form });
  if (!resp.ok) {
    throw new ApiError(resp.status, "upload_failed", `the upload was refused (HTTP ${resp.status})`, "");
  }
}
