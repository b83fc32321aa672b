-- The cluster's hub lease: one row naming the node that runs the rooms now, and its term.
-- A node takes the lease only once it has expired (by the database's clock), and every
-- term gets a new generation: each commit of the hub checks that its generation still
-- holds the row (`FOR SHARE`), so a node that lost the lease can never commit again.
CREATE TABLE garou_hub (
    id INT PRIMARY KEY CHECK (id = 1),
    node TEXT NOT NULL,
    gen BIGINT NOT NULL,
    http TEXT NOT NULL DEFAULT '',
    expires_at TIMESTAMPTZ NOT NULL
);
