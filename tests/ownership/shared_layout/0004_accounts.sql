-- Accounts, keys, plans and limits: per-account limit overrides, key rotation, rate-limit counters,
-- idempotency records and monthly usage metering (see docs/accounts.md).

-- Per-account overrides of the plan's limits (NULL: the plan's value from the gateway's configuration).
ALTER TABLE accounts
    ADD COLUMN requests_per_minute integer CHECK (requests_per_minute > 0),
    ADD COLUMN concurrent_tasks    integer CHECK (concurrent_tasks > 0),
    ADD COLUMN monthly_minutes     integer CHECK (monthly_minutes >= 0);

-- A rotated key names its successor; it keeps working until its expires_at (the grace period).
ALTER TABLE api_keys ADD COLUMN replaced_by text;

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

-- Monthly metering, maintained by the trigger below whatever process writes the task.
CREATE TABLE usage_monthly (
    account_id text             NOT NULL,
    month      date             NOT NULL,  -- first day of the UTC month
    seconds    double precision NOT NULL DEFAULT 0,
    tasks      integer          NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, month)
);

ALTER TABLE tasks ADD COLUMN billed_seconds double precision NOT NULL DEFAULT 0;
CREATE INDEX tasks_account_active ON tasks (account_id) WHERE status IN ('queued', 'running');

-- Billable seconds of a task: succeeded tasks, and failed ones with no_faces_detected (still billed, per the API).
-- Video and GIF: the analysed span of the media (start_time..min(end_time, duration)); images and anything
-- shorter: at least 1 second (1/60 of a minute).
CREATE FUNCTION facemint_billable_seconds(status text, type text, error_code text, spec jsonb, media jsonb)
RETURNS double precision LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN status = 'succeeded' OR (status = 'failed' AND error_code = 'no_faces_detected') THEN
            greatest(1.0, CASE WHEN type = 'image' THEN 0 ELSE coalesce(
                least(
                    coalesce((spec ->> 'end_time')::double precision, (media ->> 'duration')::double precision),
                    coalesce((media ->> 'duration')::double precision, (spec ->> 'end_time')::double precision)
                ) - coalesce((spec ->> 'start_time')::double precision, 0),
                0) END)
        ELSE 0
    END
$$;

-- Keeps tasks.billed_seconds and usage_monthly in step: a task is billed once when it reaches a billable
-- state, re-billed by the difference if its media duration is written later, never twice. (The casts accept
-- tasks.spec and tasks.media as json or jsonb.)
CREATE FUNCTION facemint_bill_task() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    billed   double precision := facemint_billable_seconds(
        NEW.status, NEW.type, NEW.error_code, NEW.spec::jsonb, NEW.media::jsonb);
    previous double precision := CASE WHEN TG_OP = 'UPDATE' THEN OLD.billed_seconds ELSE 0 END;
BEGIN
    NEW.billed_seconds := billed;
    IF billed <> previous THEN
        INSERT INTO usage_monthly AS u (account_id, month, seconds, tasks)
        VALUES (NEW.account_id,
                date_trunc('month', coalesce(NEW.completed_at, now()) AT TIME ZONE 'UTC')::date,
                billed - previous,
                CASE WHEN previous = 0 THEN 1 WHEN billed = 0 THEN -1 ELSE 0 END)
        ON CONFLICT (account_id, month) DO UPDATE
            SET seconds = u.seconds + EXCLUDED.seconds, tasks = u.tasks + EXCLUDED.tasks;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER tasks_bill BEFORE INSERT OR UPDATE OF status, media, error_code ON tasks
    FOR EACH ROW EXECUTE FUNCTION facemint_bill_task();
