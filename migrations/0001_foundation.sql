-- 0001_foundation: extensions and helper functions shared by every later migration.
--
-- Runs inside one transaction on PostgreSQL >= 14 (server mode) and on PGlite (PostgreSQL 18 in WASM).
-- Rules for every migration in this directory: forward-only, no CREATE INDEX CONCURRENTLY, no extension
-- other than `vector`, no syntax newer than PostgreSQL 14 (no uuidv7(), no NULLS NOT DISTINCT, no 0x..
-- integer literals, no ON DELETE SET NULL (column list)).

create extension if not exists vector;

-- UUIDv7 (RFC 9562): 48-bit big-endian Unix time in milliseconds, 4-bit version (0111), 12-bit
-- sub-millisecond fraction (rand_a, RFC 9562 §6.2 method 3 -- the layout PostgreSQL 18's uuidv7() uses),
-- 2-bit variant (10) and 62 random bits.
--
-- Random bits and variant come from gen_random_uuid() (built in since PostgreSQL 13; a v4 UUID, whose
-- variant bits are already 10): bytes 0-5 are overwritten with the millisecond timestamp, bytes 6-7 with
-- the version nibble and the 12-bit fraction; bytes 8-15 (variant + 62 random bits) are kept.
--
-- Monotonic per session, like PostgreSQL 18's uuidv7(): the 60-bit value (ms * 4096 + fraction) of the
-- last id is remembered in the session setting larder.uuid_v7_last, and a new id whose clock reading is
-- not later (same microsecond, a clock with only millisecond resolution such as PGlite's, or a clock
-- stepped backwards) takes last + 1 instead. So ids made one after another by one session -- all ids in
-- embedded mode -- sort in creation order; across sessions they sort by time to the millisecond.
-- (set_config() makes the function PARALLEL UNSAFE, the default; an aborted transaction rolls the
-- setting back, which only affects ids that were rolled back with it.)
-- clock_timestamp() (not now()) so that many ids made in one transaction still advance. Arithmetic
-- instead of bit operators: in SQL `|`, `&` and `>>` share one precedence level, and 0x.. literals are
-- PostgreSQL 16+.
create or replace function larder_uuid_v7() returns uuid
language plpgsql
volatile
as $$
declare
  us    bigint := floor(extract(epoch from clock_timestamp()) * 1000000)::bigint;   -- unix microseconds
  ts    bigint := (us / 1000) * 4096 + ((us % 1000) * 4096) / 1000;                  -- ms << 12 | fraction
  prev  bigint := coalesce(nullif(current_setting('larder.uuid_v7_last', true), '')::bigint, 0);
  b     bytea;
begin
  if ts <= prev then
    ts := prev + 1;   -- a fraction overflow carries into the millisecond, as in PostgreSQL 18
  end if;
  perform set_config('larder.uuid_v7_last', ts::text, false);
  b := overlay(uuid_send(gen_random_uuid()) placing substring(int8send(ts / 4096) from 3 for 6) from 1 for 6);
  b := set_byte(b, 6, (112 + (ts % 4096) / 256)::int);   -- 112 = 0x70: version 7 + high 4 fraction bits
  b := set_byte(b, 7, (ts % 256)::int);                  -- low 8 fraction bits
  return encode(b, 'hex')::uuid;
end
$$;

comment on function larder_uuid_v7() is
  'RFC 9562 UUIDv7: unix-ms timestamp, version 7, 12-bit sub-ms fraction, variant 10, 62 random bits. Monotonic per session; sorts by creation time.';

-- BEFORE UPDATE trigger function: keeps updated_at current on every UPDATE, whatever the caller sent.
-- now() (transaction time) to match the created_at defaults.
create or replace function larder_touch_updated_at() returns trigger
language plpgsql
as $$
begin
  new.updated_at := now();
  return new;
end
$$;

comment on function larder_touch_updated_at() is
  'BEFORE UPDATE trigger: sets NEW.updated_at = now(). Attach to every table that has updated_at.';
