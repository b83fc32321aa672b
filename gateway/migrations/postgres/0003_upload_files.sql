-- The bytes of complete uploads, in pieces of at most 1 MiB, so every node of a cluster can
-- serve a file uploaded through any other (a node keeps a local copy once it served one).
CREATE TABLE upload_files (
    id TEXT NOT NULL,
    n INT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (id, n)
);
