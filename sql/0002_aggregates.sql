-- Aggregates written by astro-leaflet (through the archiver) and read by astro-query.

-- OHLCV candles per key and interval ('1m', '5m', '1h', ...); bucket_start is the bucket's
-- inclusive start. Upserted as a bucket evolves, hence the primary key.
CREATE TABLE candles (
    key          text             NOT NULL,
    "interval"   text             NOT NULL,
    bucket_start timestamptz      NOT NULL,
    open         double precision NOT NULL,
    high         double precision NOT NULL,
    low          double precision NOT NULL,
    close        double precision NOT NULL,
    volume       double precision NOT NULL DEFAULT 0,
    trades       bigint           NOT NULL DEFAULT 0,
    updated_at   timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (key, "interval", bucket_start),
    CHECK (low <= high)
);
CREATE INDEX candles_bucket_idx ON candles (bucket_start);

-- Technical indicators (sma, ema, rsi, ...) computed per key, interval and time.
CREATE TABLE indicators (
    key        text             NOT NULL,
    name       text             NOT NULL,
    "interval" text             NOT NULL,
    ts         timestamptz      NOT NULL,
    value      double precision NOT NULL,
    params     jsonb            NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (key, name, "interval", ts)
);
CREATE INDEX indicators_ts_idx ON indicators (ts);

-- Per-minute counts for /events/stats and /stats. correlation_rule is '' for mono events so
-- it can be part of the primary key. The archiver adds to count with ON CONFLICT DO UPDATE.
CREATE TABLE event_rollups (
    minute           timestamptz NOT NULL,
    kind             text        NOT NULL CHECK (kind IN ('mono', 'multi')),
    source_stream    text        NOT NULL,
    event_type       text        NOT NULL,
    correlation_rule text        NOT NULL DEFAULT '',
    count            bigint      NOT NULL CHECK (count >= 0),
    PRIMARY KEY (minute, kind, source_stream, event_type, correlation_rule)
);

-- Edge sessions opened on astro-ingest's /stream.
CREATE TABLE sessions (
    session_id   text        PRIMARY KEY,
    user_id      text        NOT NULL,
    api_key_name text,
    device_info  jsonb       NOT NULL DEFAULT '{}'::jsonb,
    started_at   timestamptz NOT NULL,
    last_seen_at timestamptz,
    ended_at     timestamptz,
    end_reason   text,
    events       bigint      NOT NULL DEFAULT 0
);
CREATE INDEX sessions_user_idx ON sessions (user_id, started_at);

-- Predictions sent back to the edge (astro:predictions).
CREATE TABLE predictions (
    prediction_id text        PRIMARY KEY,
    user_id       text        NOT NULL,
    ts            timestamptz NOT NULL,
    payload       jsonb       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX predictions_user_ts_idx ON predictions (user_id, ts);
