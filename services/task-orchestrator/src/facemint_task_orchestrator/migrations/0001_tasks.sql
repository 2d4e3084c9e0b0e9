-- The task-orchestrator's schema: task records and monthly usage metering. Applied by the role
-- facemint_orchestrator into its schema ``orchestrator`` (ADR 14); a database of the shared layout (migrations
-- 0001-0006 of facemint-core) is adopted at this version instead.

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
    updated_at        timestamptz NOT NULL DEFAULT now(),
    -- Seconds billed, written with the terminal state (facemint_orchestrator.quota.meter).
    billed_seconds    double precision NOT NULL DEFAULT 0,
    -- The creation id of the request that stored the task (ADR 9); NULL: never de-duplicated.
    creation_id       text,
    -- The span the decoded frames covered (video and GIF are billed by it; issue #13).
    analysed_seconds  double precision CHECK (analysed_seconds >= 0)
);
CREATE INDEX tasks_account_created ON tasks (account_id, created_at DESC, task_id DESC);
CREATE INDEX tasks_active ON tasks (status) WHERE status IN ('queued', 'running');
CREATE INDEX tasks_unpublished ON tasks (completed_at) WHERE NOT event_published;
CREATE INDEX tasks_account_active ON tasks (account_id) WHERE status IN ('queued', 'running');
CREATE UNIQUE INDEX tasks_account_creation ON tasks (account_id, creation_id);

-- Monthly metering: a task is added once, in the transaction that writes its billable terminal state.
CREATE TABLE usage_monthly (
    account_id text             NOT NULL,
    month      date             NOT NULL,  -- first day of the UTC month
    seconds    double precision NOT NULL DEFAULT 0,
    tasks      integer          NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, month)
);
