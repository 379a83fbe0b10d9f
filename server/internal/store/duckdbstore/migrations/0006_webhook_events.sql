-- The inbox of webhook deliveries (Jira events): stored before the webhook is
-- answered, processed by a job, kept a while after for dedup and audit.
CREATE TABLE webhook_events (
    source          VARCHAR NOT NULL,
    delivery_id     VARCHAR NOT NULL,               -- X-Atlassian-Webhook-Identifier: stable across retries
    event           VARCHAR NOT NULL DEFAULT '',
    issue_key       VARCHAR NOT NULL DEFAULT '',
    body            BLOB NOT NULL,                  -- the exact bytes received
    received_at     TIMESTAMPTZ NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,     -- failed processing attempts
    next_attempt_at TIMESTAMPTZ,                    -- put off until
    last_error      VARCHAR NOT NULL DEFAULT '',
    processed_at    TIMESTAMPTZ,                    -- NULL while pending
    PRIMARY KEY (source, delivery_id)
);
