-- Bytes each user's remote (BigQuery pushdown) queries reserved per UTC day,
-- by their dry-run estimates: the daily quota's counts.
CREATE TABLE remote_usage (
    user_id VARCHAR NOT NULL,
    day     DATE NOT NULL,
    bytes   BIGINT NOT NULL,
    PRIMARY KEY (user_id, day)
);
