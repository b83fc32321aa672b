-- Garou's durable state. Offsets are per room; ids are gateway-wide.
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    nick TEXT NOT NULL UNIQUE
);

CREATE TABLE rooms (
    name TEXT PRIMARY KEY,
    kind INTEGER NOT NULL,            -- 0 direct, 1 group, 2 channel
    epoch INTEGER NOT NULL,           -- changes when history restarts (new store)
    last_offset INTEGER NOT NULL DEFAULT 0,
    first_offset INTEGER NOT NULL DEFAULT 1  -- oldest offset still in `events` (retention)
);

CREATE TABLE memberships (
    room TEXT NOT NULL,
    user INTEGER NOT NULL,
    role INTEGER NOT NULL,            -- 0 guest .. 4 owner
    PRIMARY KEY (room, user)
) WITHOUT ROWID;

-- Every sequenced room event, as the encoded frame clients receive: replayed on recovery.
CREATE TABLE events (
    room TEXT NOT NULL,
    offset INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    frame BLOB NOT NULL,
    PRIMARY KEY (room, offset)
) WITHOUT ROWID;

-- Messages in their current state, for history pages.
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    room TEXT NOT NULL,
    offset INTEGER NOT NULL,
    author INTEGER NOT NULL,
    nick TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    text TEXT NOT NULL,
    edited INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    client_id INTEGER NOT NULL,
    attachment TEXT
);
CREATE UNIQUE INDEX messages_by_offset ON messages (room, offset);
CREATE UNIQUE INDEX messages_by_client_id ON messages (room, author, client_id);

CREATE TABLE reactions (
    message INTEGER NOT NULL,
    user INTEGER NOT NULL,
    emoji TEXT NOT NULL,
    PRIMARY KEY (message, user, emoji)
) WITHOUT ROWID;

-- Per user and room: the highest offset delivered to / read by the user.
CREATE TABLE receipts (
    room TEXT NOT NULL,
    user INTEGER NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0,
    read INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (room, user)
) WITHOUT ROWID;

CREATE TABLE uploads (
    id TEXT PRIMARY KEY,
    owner INTEGER NOT NULL,
    name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 BLOB NOT NULL,
    received INTEGER NOT NULL DEFAULT 0,
    complete INTEGER NOT NULL DEFAULT 0,
    room TEXT
);
CREATE INDEX uploads_resume ON uploads (owner, sha256, size);
