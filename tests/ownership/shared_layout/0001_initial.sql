-- Accounts, API keys and tasks.

CREATE TABLE accounts (
    account_id      text PRIMARY KEY,
    name            text NOT NULL,
    plan            text NOT NULL DEFAULT 'free',
    webhook_secret  text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    key_id       text PRIMARY KEY,
    account_id   text NOT NULL REFERENCES accounts (account_id) ON DELETE CASCADE,
    prefix       text NOT NULL,
    key_hash     text NOT NULL UNIQUE,
    name         text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);
CREATE INDEX api_keys_account ON api_keys (account_id);

CREATE TABLE tasks (
    task_id           text PRIMARY KEY,
    account_id        text NOT NULL,
    type              text NOT NULL,
    status            text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    spec              jsonb NOT NULL,
    media             json,
    result            json,
    error_code        text,
    error_message     text,
    frames_done       integer NOT NULL DEFAULT 0,
    frames_total      integer NOT NULL DEFAULT 0,
    attempts          integer NOT NULL DEFAULT 0,
    estimated_seconds integer NOT NULL DEFAULT 0,
    request_id        text NOT NULL DEFAULT '',
    event_published   boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    completed_at      timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tasks_account_created ON tasks (account_id, created_at DESC, task_id DESC);
CREATE INDEX tasks_active ON tasks (status) WHERE status IN ('queued', 'running');
CREATE INDEX tasks_unpublished ON tasks (completed_at) WHERE NOT event_published;
