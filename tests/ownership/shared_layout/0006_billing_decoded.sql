-- Bill video and GIF tasks from the frames that were decoded and analysed, never from the container's declared
-- duration (a header patched to 1 s made a 60 s video cost 1 s; issue #13). The orchestrator records the analysed
-- span in tasks.analysed_seconds from the decoded frames' timestamps (see docs/accounts.md); media.duration stays
-- what the container declares, for display only.

ALTER TABLE tasks ADD COLUMN analysed_seconds double precision CHECK (analysed_seconds >= 0);

DROP TRIGGER tasks_bill ON tasks;
DROP FUNCTION facemint_billable_seconds(text, text, text, jsonb, jsonb);

-- Billable seconds of a task: succeeded tasks, and failed ones with no_faces_detected (still billed, per the API).
-- Video and GIF: the analysed span; images, anything shorter and tasks without a recorded span: 1 second.
CREATE FUNCTION facemint_billable_seconds(status text, type text, error_code text, analysed double precision)
RETURNS double precision LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN status = 'succeeded' OR (status = 'failed' AND error_code = 'no_faces_detected') THEN
            greatest(1.0, CASE WHEN type = 'image' THEN 0 ELSE coalesce(analysed, 0) END)
        ELSE 0
    END
$$;

-- As in 0004: keeps tasks.billed_seconds and usage_monthly in step whoever writes the task, bills it once when it
-- reaches a billable state, and by the difference if its analysed span is written later, never twice.
CREATE OR REPLACE FUNCTION facemint_bill_task() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    billed   double precision := facemint_billable_seconds(NEW.status, NEW.type, NEW.error_code, NEW.analysed_seconds);
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

CREATE TRIGGER tasks_bill BEFORE INSERT OR UPDATE OF status, analysed_seconds, error_code ON tasks
    FOR EACH ROW EXECUTE FUNCTION facemint_bill_task();
