-- Operational tables: dead and late events, API keys.

-- Entries that could not be decoded or were rejected after N attempts (astro:dead). The
-- stream entry identifies them, so archiving them twice keeps one row.
CREATE TABLE dead_events (
    stream   text        NOT NULL,
    entry_id text        NOT NULL,
    reason   text        NOT NULL,
    attempts integer     NOT NULL DEFAULT 1 CHECK (attempts >= 0),
    payload  jsonb       NOT NULL DEFAULT '{}'::jsonb, -- the entry's field/value pairs
    at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, entry_id)
);
CREATE INDEX dead_events_at_idx ON dead_events (at);

-- Events later than the allowed lateness (astro:late): counted, kept, queryable.
CREATE TABLE late_events (
    stream     text        NOT NULL,
    entry_id   text        NOT NULL,
    event_id   text,
    ts         timestamptz,
    reason     text        NOT NULL,
    lateness_ms bigint,
    payload    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, entry_id)
);
CREATE INDEX late_events_ts_idx ON late_events (ts);

-- API keys: only a hash of the key is stored (hex SHA-256), never the key itself.
CREATE TABLE api_keys (
    key_hash   text        PRIMARY KEY CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    name       text        NOT NULL UNIQUE,
    scopes     text[]      NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
