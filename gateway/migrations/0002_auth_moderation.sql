-- Token identities, room titles, bans and mutes.

-- The `sub` claim of a token user: the identity, stable while the nick may change.
CREATE TABLE subjects (
    subject TEXT PRIMARY KEY,
    user INTEGER NOT NULL UNIQUE
) WITHOUT ROWID;

ALTER TABLE rooms ADD COLUMN title TEXT NOT NULL DEFAULT '';

-- Bans and mutes of a room's members; kind 0 = ban, 1 = mute; until_ms 0 = no end.
CREATE TABLE sanctions (
    room TEXT NOT NULL,
    user INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    until_ms INTEGER NOT NULL,
    PRIMARY KEY (room, user, kind)
) WITHOUT ROWID;
