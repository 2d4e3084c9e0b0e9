-- The webhook-dispatcher's schema: deliveries (one per task event, plus manual redeliveries), their attempts, and
-- the accounts' signing secrets. Applied by the role facemint_webhook into its schema ``webhook`` (ADR 14); a
-- database of the shared layout (migrations 0001-0006 of facemint-core) is adopted at this version instead.

CREATE TABLE webhook_deliveries (
    delivery_id      text PRIMARY KEY,
    -- The gateway's account (no foreign key: accounts are another service's).
    account_id       text NOT NULL,
    task_id          text NOT NULL,
    event            text NOT NULL,
    url              text NOT NULL,
    -- The exact request body; every attempt sends these bytes.
    payload          bytea NOT NULL,
    -- Set on a delivery made by a redelivery request: the original delivery it repeats.
    redelivery_of    text REFERENCES webhook_deliveries (delivery_id) ON DELETE CASCADE,
    state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed', 'gone')),
    -- Seconds between failed attempt n and attempt n + 1 (1-based), drawn once; max attempts = cardinality + 1.
    schedule_seconds double precision[] NOT NULL,
    -- Attempts started so far, including one in flight.
    attempt_count    integer NOT NULL DEFAULT 0,
    -- When a scheduler may claim the delivery: the next attempt's time, or the end of an in-flight attempt's lease.
    next_attempt_at  timestamptz,
    -- When the task reached its terminal state.
    event_at         timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz
);
-- A redelivered event (JetStream at-least-once) never creates a second delivery.
CREATE UNIQUE INDEX webhook_deliveries_event ON webhook_deliveries (task_id, event) WHERE redelivery_of IS NULL;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_task ON webhook_deliveries (task_id, created_at);

CREATE TABLE webhook_attempts (
    delivery_id     text NOT NULL REFERENCES webhook_deliveries (delivery_id) ON DELETE CASCADE,
    number          integer NOT NULL,
    attempted_at    timestamptz NOT NULL,
    -- NULL while the attempt is in flight.
    finished_at     timestamptz,
    -- HTTP status of the response; NULL when none arrived.
    status_code     integer,
    latency_seconds double precision,
    error           text NOT NULL DEFAULT '',
    PRIMARY KEY (delivery_id, number)
);

-- An account's signing secret, made on first use. Rotation: the secret replaced by the last rotation keeps
-- signing deliveries until previous_expires_at.
CREATE TABLE webhook_secrets (
    account_id          text PRIMARY KEY,
    secret              text NOT NULL,
    previous            text,
    previous_expires_at timestamptz,
    rotated_at          timestamptz
);
