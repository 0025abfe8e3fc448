-- Sessions: the state after the last committed turn, the open turn if any, and the lease.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    state TEXT NOT NULL,
    current TEXT NOT NULL,
    turns INTEGER NOT NULL,
    ended INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    -- The turn begun and not committed, its message and the lease holder that began it.
    open_turn INTEGER,
    open_text TEXT,
    open_owner TEXT,
    -- Events in the log, so that a commit numbers its events without reading the log.
    event_count INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_expires INTEGER
);
CREATE INDEX sessions_updated ON sessions (updated_at);

-- The append-only event log: every event of every committed turn.
CREATE TABLE events (
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    turn INTEGER NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
);

-- Completed tool calls by idempotency key: a turn re-run after a crash reuses them.
CREATE TABLE tool_calls (
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    idempotency_key TEXT NOT NULL,
    tool TEXT NOT NULL,
    arguments TEXT NOT NULL,
    result TEXT NOT NULL,
    ok INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (session_id, idempotency_key)
);
