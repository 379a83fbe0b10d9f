-- Sign-in: one-time tokens (magic links, password reset, invites, OIDC state, CLI
-- codes) and the scope of personal access tokens.

-- A one-time token is stored as the SHA-256 of the token, never the token itself.
-- Each flow has its own purpose, so asking for a magic link does not kill a pending
-- password reset (the Python system kept both in one column). A user has at most one
-- live token per purpose: issuing a new one replaces the old.
CREATE TABLE one_time_tokens (
    token_hash VARCHAR PRIMARY KEY,
    purpose    VARCHAR NOT NULL,   -- magic_link | password_reset | password_setup | oidc_state | cli_code
    user_id    VARCHAR NOT NULL,   -- '' when the token belongs to nobody yet (OIDC state)
    data       VARCHAR NOT NULL,   -- what the redeemer gets back (OIDC nonce, PKCE challenge, next)
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

-- (DuckDB cannot add a NOT NULL column; every write sets it.)
-- general: everything the owner may do; read-only: only RPCs that change no state.
ALTER TABLE personal_access_tokens ADD COLUMN scope VARCHAR DEFAULT 'general';
