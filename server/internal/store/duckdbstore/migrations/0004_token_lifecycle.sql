-- Token lifecycle: sessions issued before this instant are no longer valid (set
-- on a password change or reset and on deactivation, together with revoking the
-- user's personal access tokens), so a reactivated account does not revive them.
ALTER TABLE users ADD COLUMN sessions_valid_after TIMESTAMPTZ;
