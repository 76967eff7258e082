-- Schema version 3: the credentials of people who sign in with the
-- organisation's identity provider (lease_core::CredentialStore). Applied
-- to a version 2 file in place, in the migration's one transaction; the
-- lease tables are not touched. Times: INTEGER nanoseconds since the Unix
-- epoch (UTC), as everywhere in the file.

-- Signed-in browsers, by the hex SHA-256 of the session cookie (the cookie
-- itself is never stored).
CREATE TABLE web_sessions (
    id_sha256  TEXT PRIMARY KEY NOT NULL,
    owner      TEXT NOT NULL,
    admin      INTEGER NOT NULL,
    -- The identity provider's issuer and subject, for audit logs.
    subject    TEXT NOT NULL,
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Sign out everywhere; purging expired sessions.
CREATE INDEX web_sessions_by_owner ON web_sessions (owner);
CREATE INDEX web_sessions_by_expiry ON web_sessions (expires_at);

-- Personal tokens, by their public id; the token itself is kept only as
-- its hex SHA-256.
CREATE TABLE personal_tokens (
    id           TEXT PRIMARY KEY NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    owner        TEXT NOT NULL,
    admin        INTEGER NOT NULL,
    name         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    -- NULL: never expires.
    expires_at   INTEGER,
    last_used_at INTEGER
) WITHOUT ROWID;

-- An owner's tokens newest first (the list, and the count of the limit);
-- purging expired tokens.
CREATE INDEX personal_tokens_by_owner ON personal_tokens (owner, created_at, id);
CREATE INDEX personal_tokens_by_expiry ON personal_tokens (expires_at)
    WHERE expires_at IS NOT NULL;
