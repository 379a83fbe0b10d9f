-- Data: the table registry, sync state and history, sync jobs, per-user sync
-- preferences, data profiles and metric definitions.
CREATE TABLE table_registry (
    id                      VARCHAR PRIMARY KEY,   -- slug of the name; the one key for grants, files, manifest
    name                    VARCHAR NOT NULL UNIQUE,
    source_type             VARCHAR NOT NULL,
    bucket                  VARCHAR NOT NULL DEFAULT '',
    source_table            VARCHAR NOT NULL DEFAULT '',
    source_query            VARCHAR NOT NULL DEFAULT '',
    sync_strategy           VARCHAR NOT NULL DEFAULT 'full_refresh',
    query_mode              VARCHAR NOT NULL DEFAULT 'local',
    sync_schedule           VARCHAR NOT NULL DEFAULT '',
    primary_key             VARCHAR NOT NULL DEFAULT '[]',   -- JSON list
    folder                  VARCHAR NOT NULL DEFAULT '',
    description             VARCHAR NOT NULL DEFAULT '',
    registered_by           VARCHAR NOT NULL DEFAULT '',
    registered_at           TIMESTAMPTZ NOT NULL,
    incremental_column      VARCHAR NOT NULL DEFAULT '',
    incremental_window_days INTEGER NOT NULL DEFAULT 0,
    partition_by            VARCHAR NOT NULL DEFAULT '',
    partition_granularity   VARCHAR NOT NULL DEFAULT ''
);

-- One row per table the orchestrator has seen in an extract: registry tables and
-- tables a connector wrote without a registry row. hash is the MD5 of the Parquet
-- bytes, computed when the file was written; parts lists partition files.
CREATE TABLE sync_state (
    table_id        VARCHAR PRIMARY KEY,
    source          VARCHAR NOT NULL,
    query_mode      VARCHAR NOT NULL DEFAULT 'local',
    last_sync       TIMESTAMPTZ,
    rows            BIGINT,
    file_size_bytes BIGINT,
    hash            VARCHAR NOT NULL DEFAULT '',
    parts           VARCHAR NOT NULL DEFAULT '[]',   -- JSON [{name, hash, size_bytes}]
    path            VARCHAR NOT NULL DEFAULT '',     -- data file or folder, relative to DATA_DIR
    status          VARCHAR NOT NULL DEFAULT 'ok',   -- ok | error
    error           VARCHAR NOT NULL DEFAULT ''
);

CREATE TABLE sync_jobs (
    id           VARCHAR PRIMARY KEY,
    state        VARCHAR NOT NULL,
    tables       VARCHAR NOT NULL DEFAULT '[]',      -- JSON per-table progress
    triggered_by VARCHAR NOT NULL DEFAULT '',
    created_at   TIMESTAMPTZ NOT NULL,
    started_at   TIMESTAMPTZ,
    finished_at  TIMESTAMPTZ,
    error        VARCHAR NOT NULL DEFAULT '',
    generation   BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE sync_history (
    id          VARCHAR PRIMARY KEY,
    job_id      VARCHAR NOT NULL,
    table_id    VARCHAR NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL,
    status      VARCHAR NOT NULL,
    rows        BIGINT,
    size_bytes  BIGINT,
    error       VARCHAR NOT NULL DEFAULT ''
);

CREATE TABLE user_sync_settings (
    user_id    VARCHAR NOT NULL,
    table_id   VARCHAR NOT NULL,
    enabled    BOOLEAN NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, table_id)
);

CREATE TABLE user_settings (
    user_id    VARCHAR PRIMARY KEY,
    table_mode VARCHAR NOT NULL DEFAULT 'all',     -- all | selected
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE table_profiles (
    table_id    VARCHAR PRIMARY KEY,
    profile     VARCHAR NOT NULL,                    -- JSON (agnes.v1.TableProfile)
    profiled_at TIMESTAMPTZ NOT NULL,
    hash        VARCHAR NOT NULL DEFAULT ''
);

CREATE TABLE metric_definitions (
    id         VARCHAR PRIMARY KEY,                  -- category/name
    category   VARCHAR NOT NULL,
    name       VARCHAR NOT NULL,
    definition VARCHAR NOT NULL,                     -- JSON (agnes.v1.Metric)
    updated_at TIMESTAMPTZ NOT NULL
);
