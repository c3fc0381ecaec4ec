-- Upload session caps (issue 8: sessions were unlimited and anonymous).
--
-- client names who opened a session (the registry's ClientID: a user name
-- or an address), '' for sessions from before this migration, which count
-- against their repository's cap only. The two indexes make counting the
-- open sessions of one repository or one client an index range scan, which
-- CreateUploadCapped does (bounded by the cap) inside its write
-- transaction.
ALTER TABLE uploads ADD COLUMN client TEXT NOT NULL DEFAULT '';
CREATE INDEX uploads_repo ON uploads (repo);
CREATE INDEX uploads_client ON uploads (client) WHERE client != '';
