-- Upload caps per repository and per client (see meta/sqlite's 0005).
ALTER TABLE uploads ADD COLUMN client TEXT COLLATE "C" NOT NULL DEFAULT '';
CREATE INDEX uploads_repo ON uploads (repo);
CREATE INDEX uploads_client ON uploads (client) WHERE client <> '';
