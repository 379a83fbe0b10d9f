-- Identity and access: users, groups, memberships, grants, tokens, sessions, audit.
CREATE TABLE users (
    id             VARCHAR PRIMARY KEY,
    email          VARCHAR NOT NULL UNIQUE,   -- stored trimmed and lower-cased
    name           VARCHAR NOT NULL DEFAULT '',
    password_hash  VARCHAR,                   -- argon2id PHC string; NULL = no password
    active         BOOLEAN NOT NULL DEFAULT TRUE,
    created_at     TIMESTAMPTZ NOT NULL,
    deactivated_at TIMESTAMPTZ
);

CREATE TABLE user_groups (
    id          VARCHAR PRIMARY KEY,
    name        VARCHAR NOT NULL UNIQUE,
    description VARCHAR NOT NULL DEFAULT '',
    is_system   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  TIMESTAMPTZ NOT NULL,
    created_by  VARCHAR NOT NULL DEFAULT ''
);

CREATE TABLE user_group_members (
    user_id  VARCHAR NOT NULL,
    group_id VARCHAR NOT NULL,
    source   VARCHAR NOT NULL,               -- admin | system_seed
    added_at TIMESTAMPTZ NOT NULL,
    added_by VARCHAR NOT NULL DEFAULT '',
    PRIMARY KEY (user_id, group_id)
);

CREATE TABLE resource_grants (
    id            VARCHAR PRIMARY KEY,
    group_id      VARCHAR NOT NULL,
    resource_type VARCHAR NOT NULL,
    resource_id   VARCHAR NOT NULL,
    assigned_at   TIMESTAMPTZ NOT NULL,
    assigned_by   VARCHAR NOT NULL DEFAULT '',
    UNIQUE (group_id, resource_type, resource_id)
);

CREATE TABLE personal_access_tokens (
    id           VARCHAR PRIMARY KEY,
    user_id      VARCHAR NOT NULL,
    name         VARCHAR NOT NULL,
    token_hash   VARCHAR NOT NULL,            -- SHA-256 hex of the token; the token itself is never stored
    prefix       VARCHAR NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    last_used_ip VARCHAR,
    revoked_at   TIMESTAMPTZ
);

-- Session JWTs are stateless until logout: a logged-out session's jti is kept here
-- until the token would have expired anyway.
CREATE TABLE revoked_sessions (
    jti        VARCHAR PRIMARY KEY,
    user_id    VARCHAR NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE audit_log (
    id         VARCHAR PRIMARY KEY,
    ts         TIMESTAMPTZ NOT NULL,
    user_id    VARCHAR,
    action     VARCHAR NOT NULL,
    resource   VARCHAR,
    params     VARCHAR,                      -- JSON
    result     VARCHAR NOT NULL,
    client_ip  VARCHAR,
    request_id VARCHAR
);

CREATE TABLE access_requests (
    id               VARCHAR PRIMARY KEY,
    user_id          VARCHAR NOT NULL,
    resource_type    VARCHAR NOT NULL,
    resource_id      VARCHAR NOT NULL,
    reason           VARCHAR NOT NULL DEFAULT '',
    status           VARCHAR NOT NULL,        -- pending | approved | denied
    created_at       TIMESTAMPTZ NOT NULL,
    reviewed_by      VARCHAR,
    reviewed_at      TIMESTAMPTZ,
    review_note      VARCHAR,
    granted_group_id VARCHAR
);
