-- What started an execution, beyond its type: {"type", "id" (the trigger's id), "scheduled_at"
-- (cron, ISO), "body" and "headers" (webhook), "execution_id" (flow: the upstream execution)}.
-- JSON, masked like the inputs; NULL for executions created before round 2 or by `run`.
ALTER TABLE executions ADD COLUMN trigger_data TEXT;
