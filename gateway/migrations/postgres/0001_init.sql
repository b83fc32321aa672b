-- Garou's durable state in PostgreSQL: the same tables as the SQLite store, shaped for a
-- cluster of gateways sharing them. Offsets are per room: a room's row carries its epoch and
-- its `last_offset`, so a gateway can take the next offsets under that row's lock
-- (UPDATE rooms SET last_offset = last_offset + n ... RETURNING). Ids are gateway-wide.
-- `offset` and `user` are reserved words here: the columns are `room_offset` and `user_id`.
-- Message texts and emoji are what clients sent, as UTF-8 bytes (BYTEA): TEXT cannot hold a
-- NUL character, which SQLite keeps, and bytes order like SQLite's BINARY collation.

CREATE TABLE users (
    id BIGINT PRIMARY KEY,
    nick TEXT NOT NULL UNIQUE
);

-- The `sub` claim of a token user: the identity, stable while the nick may change.
CREATE TABLE subjects (
    subject TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL UNIQUE
);

CREATE TABLE rooms (
    name TEXT PRIMARY KEY,
    kind BIGINT NOT NULL,                    -- 0 direct, 1 group, 2 channel
    epoch BIGINT NOT NULL,                   -- changes when history restarts (new store)
    last_offset BIGINT NOT NULL DEFAULT 0,
    first_offset BIGINT NOT NULL DEFAULT 1,  -- oldest offset still in `events` (retention)
    title TEXT NOT NULL DEFAULT ''
);

CREATE TABLE memberships (
    room TEXT NOT NULL,
    user_id BIGINT NOT NULL,
    role BIGINT NOT NULL,                    -- 0 guest .. 4 owner
    PRIMARY KEY (room, user_id)
);

-- Bans and mutes of a room's members; kind 0 = ban, 1 = mute; until_ms 0 = no end.
CREATE TABLE sanctions (
    room TEXT NOT NULL,
    user_id BIGINT NOT NULL,
    kind BIGINT NOT NULL,
    until_ms BIGINT NOT NULL,
    PRIMARY KEY (room, user_id, kind)
);

-- Every sequenced room event, as the encoded frame clients receive: replayed on recovery.
CREATE TABLE events (
    room TEXT NOT NULL,
    room_offset BIGINT NOT NULL,
    ts_ms BIGINT NOT NULL,
    frame BYTEA NOT NULL,
    PRIMARY KEY (room, room_offset)
);

-- Messages in their current state, for history pages.
CREATE TABLE messages (
    id BIGINT PRIMARY KEY,
    room TEXT NOT NULL,
    room_offset BIGINT NOT NULL,
    author BIGINT NOT NULL,
    nick TEXT NOT NULL,
    ts_ms BIGINT NOT NULL,
    text BYTEA NOT NULL,                     -- UTF-8
    edited BOOLEAN NOT NULL DEFAULT FALSE,
    deleted BOOLEAN NOT NULL DEFAULT FALSE,
    client_id BIGINT NOT NULL,
    attachment TEXT
);
CREATE UNIQUE INDEX messages_by_offset ON messages (room, room_offset);
CREATE UNIQUE INDEX messages_by_client_id ON messages (room, author, client_id);

CREATE TABLE reactions (
    message BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    emoji BYTEA NOT NULL,                    -- UTF-8
    PRIMARY KEY (message, user_id, emoji)
);

-- Per user and room: the highest offset delivered to / read by the user.
CREATE TABLE receipts (
    room TEXT NOT NULL,
    user_id BIGINT NOT NULL,
    delivered BIGINT NOT NULL DEFAULT 0,
    read BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (room, user_id)
);

CREATE TABLE uploads (
    id TEXT PRIMARY KEY,
    owner BIGINT NOT NULL,
    name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 BYTEA NOT NULL,
    received BIGINT NOT NULL DEFAULT 0,
    complete BOOLEAN NOT NULL DEFAULT FALSE,
    room TEXT
);
CREATE INDEX uploads_resume ON uploads (owner, sha256, size);
