-- Schema version 1 of the ContainerLease lease store on PostgreSQL.
-- Every table lives in the namespace's own schema (`containerlease_<ns>`),
-- which the connection's search_path names.
-- Times: BIGINT nanoseconds since the Unix epoch (UTC): exact to the
-- nanosecond (timestamptz keeps microseconds only). Money: BIGINT
-- nano-dollars. Ids and owners compare bytewise (COLLATE "C"), as the other
-- stores order them, whatever the database's collation.

-- Active leases (not finished yet) and their claims.
CREATE TABLE active (
    id                 TEXT COLLATE "C" PRIMARY KEY,
    owner              TEXT COLLATE "C" NOT NULL,
    offering           TEXT NOT NULL,
    container_id       TEXT,
    status             TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    expires_at         BIGINT NOT NULL,
    ended_at           BIGINT,
    end_reason         TEXT,
    hourly_rate        BIGINT NOT NULL,
    estimated_cost     BIGINT NOT NULL,
    final_cost         BIGINT,
    error              TEXT,
    provision_attempts BIGINT NOT NULL,
    removal_failures   BIGINT NOT NULL,
    revision           BIGINT NOT NULL,
    nano_cpus          BIGINT NOT NULL,
    memory_mb          BIGINT NOT NULL,
    -- When the reaper should pick the lease up (expiry, or ended_at while deleting).
    due_at             BIGINT NOT NULL,
    -- Until when a reaper holds it (or when a released claim may be retried).
    claimed_until      BIGINT,
    -- max(due_at, claimed_until): what claims and next_due look at.
    claimable_at       BIGINT NOT NULL
);

-- Claims and next_due: the due time.
CREATE INDEX active_by_claimable ON active (claimable_at);
-- Lists: created order, by owner, by status.
CREATE INDEX active_by_created ON active (created_at, id);
CREATE INDEX active_by_owner ON active (owner, created_at, id);
CREATE INDEX active_by_status ON active (status, created_at, id);

-- Finished leases, kept for the history retention.
CREATE TABLE finished (
    id                 TEXT COLLATE "C" PRIMARY KEY,
    owner              TEXT COLLATE "C" NOT NULL,
    offering           TEXT NOT NULL,
    container_id       TEXT,
    status             TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    expires_at         BIGINT NOT NULL,
    ended_at           BIGINT,
    end_reason         TEXT,
    hourly_rate        BIGINT NOT NULL,
    estimated_cost     BIGINT NOT NULL,
    final_cost         BIGINT,
    error              TEXT,
    provision_attempts BIGINT NOT NULL,
    removal_failures   BIGINT NOT NULL,
    revision           BIGINT NOT NULL,
    nano_cpus          BIGINT NOT NULL,
    memory_mb          BIGINT NOT NULL,
    -- ended_at, or expires_at if it has none: the history order.
    ended_key          BIGINT NOT NULL
);

-- History order (read backwards), all owners and one owner; the daily spend.
CREATE INDEX finished_by_end ON finished (ended_key, id);
CREATE INDEX finished_by_owner ON finished (owner, ended_key, id);
CREATE INDEX finished_by_owner_created ON finished (owner, created_at);

-- Each owner's totals of finished leases, kept forever.
CREATE TABLE usage (
    owner       TEXT COLLATE "C" PRIMARY KEY,
    ended_count BIGINT NOT NULL,
    ended_cost  BIGINT NOT NULL
);

-- Signed-in browsers, by the hex SHA-256 of the session cookie.
CREATE TABLE web_sessions (
    id_sha256  TEXT COLLATE "C" PRIMARY KEY,
    owner      TEXT COLLATE "C" NOT NULL,
    admin      BOOLEAN NOT NULL,
    subject    TEXT NOT NULL,
    csrf       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX web_sessions_by_owner ON web_sessions (owner);
CREATE INDEX web_sessions_by_expiry ON web_sessions (expires_at);

-- Personal tokens, by their public id; the token itself only as its hash.
CREATE TABLE personal_tokens (
    id           TEXT COLLATE "C" PRIMARY KEY,
    token_sha256 TEXT COLLATE "C" NOT NULL UNIQUE,
    owner        TEXT COLLATE "C" NOT NULL,
    admin        BOOLEAN NOT NULL,
    name         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    -- NULL: never expires.
    expires_at   BIGINT,
    last_used_at BIGINT
);
CREATE INDEX personal_tokens_by_owner ON personal_tokens (owner, created_at, id);
CREATE INDEX personal_tokens_by_expiry ON personal_tokens (expires_at)
    WHERE expires_at IS NOT NULL;
