-- Issue 9: indexes for astro-query's /candles/{key} and /indicators/{key}.
-- The primary keys (0005) serve a series read with its event type: (key, event_type, "interval",
-- bucket_start) for candles; they do not serve a read of every event type of a key (type
-- omitted), nor the indicators of one candle: the indicators' key puts name before "interval"
-- and ts, so finding the rows of one bucket would scan every indicator row of (key, type).
CREATE INDEX candles_key_interval_bucket_idx ON candles (key, "interval", bucket_start);
CREATE INDEX indicators_key_interval_ts_idx ON indicators (key, "interval", ts);
