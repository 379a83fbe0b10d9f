-- Source instances, source-side filters, and the one job queue.

-- (DuckDB cannot add a NOT NULL column; every write sets both.)
-- The source instance a table is extracted from (its configured name, also its
-- extract folder). '' reads as source_type: the default instance of that type.
ALTER TABLE table_registry ADD COLUMN source VARCHAR DEFAULT '';
-- Row filters applied at the source: JSON [{column, operator, values, data_type}].
ALTER TABLE table_registry ADD COLUMN where_filters VARCHAR DEFAULT '[]';

-- Every background job (syncs, rebuilds, webhook events, periodic checks). A
-- runner leases a job (owner, lease_until) and renews the lease while it works;
-- a lease that runs out makes the job claimable again.
CREATE TABLE jobs (
    id               VARCHAR PRIMARY KEY,
    kind             VARCHAR NOT NULL,
    keys             VARCHAR NOT NULL DEFAULT '[]',   -- JSON list of singleton keys
    state            VARCHAR NOT NULL,                -- pending | running | succeeded | failed | partial | cancelled
    params           VARCHAR NOT NULL DEFAULT '',     -- JSON, the kind's input
    progress         VARCHAR NOT NULL DEFAULT '',     -- JSON, the kind's progress
    error            VARCHAR NOT NULL DEFAULT '',
    created_by       VARCHAR NOT NULL DEFAULT '',
    created_at       TIMESTAMPTZ NOT NULL,
    run_after        TIMESTAMPTZ NOT NULL,
    started_at       TIMESTAMPTZ,
    finished_at      TIMESTAMPTZ,
    attempts         INTEGER NOT NULL DEFAULT 0,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    owner            VARCHAR NOT NULL DEFAULT '',
    lease_until      TIMESTAMPTZ
);

-- The keys unfinished jobs hold: the primary key makes a second holder impossible.
CREATE TABLE job_keys (
    key    VARCHAR PRIMARY KEY,
    job_id VARCHAR NOT NULL
);

-- Sync jobs so far become jobs of kind "sync"; their per-table progress moves along.
INSERT INTO jobs (id, kind, state, progress, error, created_by, created_at, run_after, started_at, finished_at, attempts)
SELECT id, 'sync',
       CASE WHEN state IN ('pending', 'running') THEN 'cancelled' ELSE state END,
       '{"tables":' || tables || ',"generation":' || generation || '}',
       error, triggered_by, created_at, created_at, started_at, finished_at, 1
FROM sync_jobs;
DROP TABLE sync_jobs;
