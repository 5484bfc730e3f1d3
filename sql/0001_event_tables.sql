-- Event tables: mono_events and multi_events, partitioned by day on the event time.
--
-- Plain PostgreSQL: declarative RANGE partitions on ts, one per UTC day, named
-- <table>_pYYYYMMDD, created ahead by the archiver through astro_ensure_day_partitions(), plus a
-- DEFAULT partition that catches outliers (very late or far-future events) so an insert never
-- fails for want of a partition. With TimescaleDB installed and preloaded, the same tables
-- become hypertables with one-day chunks instead (TimescaleDB creates chunks itself).
-- The primary key (event_id, ts) makes archiving idempotent: INSERT ... ON CONFLICT DO NOTHING.

DO $migration$
DECLARE
    use_timescale boolean :=
        EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
        AND current_setting('shared_preload_libraries') LIKE '%timescaledb%';
    common_cols text := $cols$
        event_id        text             NOT NULL CHECK (length(event_id) BETWEEN 1 AND 64),
        ts              timestamptz      NOT NULL,
        source_stream   text             NOT NULL,
        key             text             NOT NULL DEFAULT '',
        event_type      text             NOT NULL,
        value           double precision NOT NULL,
        metadata        jsonb            NOT NULL DEFAULT '{}'::jsonb,
        stream_entry_id text,
        ingested_at     timestamptz      NOT NULL DEFAULT now()$cols$;
    multi_cols text := $cols$,
        correlation_rule text             NOT NULL,
        integrated_value double precision NOT NULL,
        confidence       double precision NOT NULL CHECK (confidence BETWEEN 0 AND 1),
        source_events    text[]           NOT NULL DEFAULT '{}',
        lineage          jsonb            NOT NULL DEFAULT '[]'::jsonb$cols$;
    tail text;
BEGIN
    IF use_timescale THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        tail := ', PRIMARY KEY (event_id, ts))';
    ELSE
        tail := ', PRIMARY KEY (event_id, ts)) PARTITION BY RANGE (ts)';
    END IF;
    EXECUTE 'CREATE TABLE mono_events (' || common_cols || tail;
    EXECUTE 'CREATE TABLE multi_events (' || common_cols || multi_cols || tail;
    IF use_timescale THEN
        EXECUTE $x$SELECT create_hypertable('mono_events', 'ts',
                    chunk_time_interval => interval '1 day')$x$;
        EXECUTE $x$SELECT create_hypertable('multi_events', 'ts',
                    chunk_time_interval => interval '1 day')$x$;
    ELSE
        CREATE TABLE mono_events_default PARTITION OF mono_events DEFAULT;
        CREATE TABLE multi_events_default PARTITION OF multi_events DEFAULT;
    END IF;
END
$migration$;

-- Indexes for the query API's filters; declared on the parent, so every partition gets them.
CREATE INDEX mono_events_ts_idx ON mono_events (ts);
CREATE INDEX mono_events_source_ts_idx ON mono_events (source_stream, ts);
CREATE INDEX mono_events_type_ts_idx ON mono_events (event_type, ts);
CREATE INDEX mono_events_key_ts_idx ON mono_events (key, ts);
CREATE INDEX multi_events_ts_idx ON multi_events (ts);
CREATE INDEX multi_events_source_ts_idx ON multi_events (source_stream, ts);
CREATE INDEX multi_events_type_ts_idx ON multi_events (event_type, ts);
CREATE INDEX multi_events_key_ts_idx ON multi_events (key, ts);
CREATE INDEX multi_events_rule_ts_idx ON multi_events (correlation_rule, ts);
CREATE INDEX multi_events_confidence_idx ON multi_events (confidence);

-- Creates the day partitions [from_day, from_day + days) of a partitioned table that do not
-- exist yet and returns how many it created; idempotent and safe to call concurrently (an
-- advisory transaction lock serialises callers). Rows already sitting in the DEFAULT
-- partition for a new day are moved into it, which is what lets PostgreSQL accept the new
-- partition. Days are UTC days. On a hypertable (TimescaleDB) it does nothing and returns 0.
-- SECURITY DEFINER so the archiver's role needs no DDL rights, only EXECUTE.
CREATE FUNCTION astro_ensure_day_partitions(parent regclass, from_day date, days integer)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
AS $fn$
DECLARE
    sch text;
    rel text;
    deflt text;
    d date;
    lo timestamptz;
    hi timestamptz;
    part text;
    created integer := 0;
BEGIN
    IF days IS NULL OR days < 0 OR days > 366 THEN
        RAISE EXCEPTION 'astro_ensure_day_partitions: days must be 0..366, got %', days;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = parent) THEN
        RETURN 0;
    END IF;
    SELECT n.nspname, c.relname INTO sch, rel
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = parent;
    PERFORM pg_advisory_xact_lock(hashtext('astro_ensure_day_partitions'), parent::oid::integer);
    SELECT c.relname INTO deflt
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = parent AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT';
    FOR i IN 0 .. days - 1 LOOP
        d := from_day + i;
        part := rel || '_p' || to_char(d, 'YYYYMMDD');
        CONTINUE WHEN to_regclass(format('%I.%I', sch, part)) IS NOT NULL;
        lo := d::timestamp AT TIME ZONE 'UTC';
        hi := (d + 1)::timestamp AT TIME ZONE 'UTC';
        EXECUTE format('CREATE TABLE %I.%I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                       sch, part, parent);
        IF deflt IS NOT NULL THEN
            EXECUTE format('WITH moved AS (DELETE FROM %I.%I WHERE ts >= %L AND ts < %L '
                           'RETURNING *) INSERT INTO %I.%I SELECT * FROM moved',
                           sch, deflt, lo, hi, sch, part);
        END IF;
        EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                       parent, sch, part, lo, hi);
        created := created + 1;
    END LOOP;
    RETURN created;
END
$fn$;

-- Drops the day partitions of parent whose whole day is older than keep_days UTC days before
-- today (retention) and returns how many it dropped. The DEFAULT partition is never dropped.
-- On a hypertable it calls TimescaleDB's drop_chunks with the same horizon.
CREATE FUNCTION astro_drop_day_partitions(parent regclass, keep_days integer)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
AS $fn$
DECLARE
    horizon date := (now() AT TIME ZONE 'UTC')::date - keep_days;
    p record;
    dropped integer := 0;
BEGIN
    IF keep_days IS NULL OR keep_days < 0 THEN
        RAISE EXCEPTION 'astro_drop_day_partitions: keep_days must be >= 0, got %', keep_days;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = parent) THEN
        IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
            EXECUTE format('SELECT count(*) FROM drop_chunks(%L::regclass, older_than => %L::timestamptz)',
                           parent, horizon::timestamp AT TIME ZONE 'UTC') INTO dropped;
        END IF;
        RETURN dropped;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('astro_ensure_day_partitions'), parent::oid::integer);
    FOR p IN
        SELECT n.nspname AS sch, c.relname AS rel
          FROM pg_inherits i
          JOIN pg_class c ON c.oid = i.inhrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE i.inhparent = parent AND c.relname ~ '_p[0-9]{8}$'
    LOOP
        IF to_date(right(p.rel, 8), 'YYYYMMDD') < horizon THEN
            EXECUTE format('DROP TABLE %I.%I', p.sch, p.rel);
            dropped := dropped + 1;
        END IF;
    END LOOP;
    RETURN dropped;
END
$fn$;

REVOKE ALL ON FUNCTION astro_ensure_day_partitions(regclass, date, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION astro_drop_day_partitions(regclass, integer) FROM PUBLIC;
