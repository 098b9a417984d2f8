-- 0010_usage_stage_latency: per-stage latencies of a usage event (answers: retrieve, generate, total),
-- next to the total in latency_ms. The same object is on the answer message (messages.latency_ms).
alter table usage_events add column stage_latency_ms jsonb not null default '{}';
alter table usage_events add constraint usage_events_stage_latency_object
  check (jsonb_typeof(stage_latency_ms) = 'object');
