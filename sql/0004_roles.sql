-- Least-privilege roles. They are NOLOGIN groups: a deployment creates login users and grants
-- them one of these (CREATE ROLE archiver LOGIN PASSWORD ... IN ROLE astro_archiver).
-- Roles are cluster-wide, so creation is guarded for databases sharing one cluster.
DO $migration$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['astro_archiver', 'astro_query', 'astro_ingest'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END
$migration$;

GRANT USAGE ON SCHEMA public TO astro_archiver, astro_query, astro_ingest;

-- astro-archiver: idempotent inserts and upserts into everything it archives, partition
-- upkeep through the SECURITY DEFINER functions; no DDL, no deletes.
GRANT SELECT, INSERT ON mono_events, multi_events, dead_events, late_events, predictions
    TO astro_archiver;
GRANT SELECT, INSERT, UPDATE ON candles, indicators, event_rollups, sessions TO astro_archiver;
GRANT EXECUTE ON FUNCTION astro_ensure_day_partitions(regclass, date, integer) TO astro_archiver;
GRANT EXECUTE ON FUNCTION astro_drop_day_partitions(regclass, integer) TO astro_archiver;

-- astro-query: reads the data; reads API keys to authenticate requests.
GRANT SELECT ON mono_events, multi_events, candles, indicators, event_rollups, sessions,
    predictions, dead_events, late_events, api_keys TO astro_query;

-- astro-ingest: authenticates producers.
GRANT SELECT ON api_keys TO astro_ingest;
