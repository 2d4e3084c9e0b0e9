-- The gateway's schema: accounts, API keys, plans' per-account overrides, rate-limit counters and idempotency
-- records (see docs/accounts.md). Applied by the role facemint_gateway into its schema ``gateway`` (ADR 14); a
-- database of the shared layout (migrations 0001-0006 of facemint-core) is adopted at this version instead.

CREATE TABLE accounts (
    account_id          text PRIMARY KEY,
    name                text NOT NULL,
    plan                text NOT NULL DEFAULT 'free',
    created_at          timestamptz NOT NULL DEFAULT now(),
    -- Per-account overrides of the plan's limits (NULL: the plan's value from the gateway's configuration).
    requests_per_minute integer CHECK (requests_per_minute > 0),
    concurrent_tasks    integer CHECK (concurrent_tasks > 0),
    monthly_minutes     integer CHECK (monthly_minutes >= 0)
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
    last_used_at timestamptz,
    -- A rotated key names its successor; it keeps working until its expires_at (the grace period).
    replaced_by  text
);
CREATE INDEX api_keys_account ON api_keys (account_id);

-- Fixed one-minute windows, one row per key per window, shared by every gateway process. UNLOGGED: counters
-- are not worth WAL (a crash resets at most the current minute), and commits that touch only unlogged tables
-- do not wait for a WAL flush. Old windows are deleted by the gateways' janitor.
CREATE UNLOGGED TABLE rate_limit_counters (
    key_id       text    NOT NULL,
    window_start bigint  NOT NULL,  -- unix seconds, a multiple of the window length
    count        integer NOT NULL,
    PRIMARY KEY (key_id, window_start)
);

-- The first response to a POST carrying an Idempotency-Key, replayed for 24 hours. ``scope`` is the account
-- (or 'admin' for the admin API); ``status`` is NULL while the first request is still being processed.
CREATE TABLE idempotency_keys (
    scope           text        NOT NULL,
    idempotency_key text        NOT NULL,
    fingerprint     text        NOT NULL,  -- sha256 of method, path and the (canonical JSON) body
    status          integer,
    headers         jsonb,
    body            bytea,
    created_at      timestamptz NOT NULL DEFAULT now(),
    locked_until    timestamptz NOT NULL,
    PRIMARY KEY (scope, idempotency_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
