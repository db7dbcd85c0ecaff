-- API tokens of `kestra-trio server` (`kestra-trio server token create|list|revoke`).
-- Only the SHA-256 of a token is stored: the token itself is shown once, at creation.
-- A token is 32 random bytes, so a plain (unsalted, fast) hash is as strong as the token:
-- nobody can guess one to match a hash, and a stolen table gives no usable token.
CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,     -- short public id, also the token's visible prefix
    name         TEXT NOT NULL,        -- what the operator called it ("ci", "grafana")
    token_hash   TEXT NOT NULL UNIQUE, -- sha256 of the whole token, hex
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,              -- written at most once a minute per token
    revoked_at   INTEGER               -- NULL: valid
) WITHOUT ROWID;
