-- Issue 9: candles and indicators as astro-leaflet emits them (common/include/astro/agg.h).
-- A series is (key, event_type, interval): one key may carry candles of several event types
-- (a device's temperature and humidity). `trades` is the candle's event count; vwap is
-- sum(price * volume) / sum(volume). Indicator rows are keyed by the bucket_start of the candle
-- at whose close they were computed; `ready` is false while an indicator is warming up.
ALTER TABLE candles ADD COLUMN event_type text NOT NULL DEFAULT '';
ALTER TABLE candles ADD COLUMN vwap double precision;
ALTER TABLE candles DROP CONSTRAINT candles_pkey;
ALTER TABLE candles ADD PRIMARY KEY (key, event_type, "interval", bucket_start);

ALTER TABLE indicators ADD COLUMN event_type text NOT NULL DEFAULT '';
ALTER TABLE indicators ADD COLUMN ready boolean NOT NULL DEFAULT true;
ALTER TABLE indicators DROP CONSTRAINT indicators_pkey;
ALTER TABLE indicators ADD PRIMARY KEY (key, event_type, name, "interval", ts);
