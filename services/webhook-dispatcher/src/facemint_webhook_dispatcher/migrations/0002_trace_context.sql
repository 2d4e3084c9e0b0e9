-- The W3C traceparent of the event a delivery comes from, so that an attempt made by whichever dispatcher claims the
-- delivery continues the task's trace (ADR 0018). NULL when the event was not traced.

ALTER TABLE webhook_deliveries ADD COLUMN traceparent text;
