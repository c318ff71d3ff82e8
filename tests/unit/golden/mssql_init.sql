-- bridge_outbox: every captured change, in the order the dispatcher publishes them (seq),
-- until its publish is confirmed and its echo came back.
IF OBJECT_ID(N'bridge_outbox', N'U') IS NULL
CREATE TABLE bridge_outbox (
    seq          BIGINT IDENTITY(1, 1) NOT NULL,
    event_id     CHAR(36)      NOT NULL,
    created_at   DATETIME2(6)  NOT NULL,
    origin       NVARCHAR(64)  COLLATE Latin1_General_BIN2 NOT NULL,
    [type]       NVARCHAR(300) NOT NULL,
    payload      NVARCHAR(MAX) NOT NULL,
    row_hash     BINARY(32)    NOT NULL,
    tx           BIGINT        NOT NULL,
    published_at DATETIME2(6)  NULL,
    attempts     INT           NOT NULL CONSTRAINT bridge_outbox_attempts DEFAULT 0,
    echoed_at    DATETIME2(6)  NULL,
    CONSTRAINT bridge_outbox_pk PRIMARY KEY CLUSTERED (seq),
    CONSTRAINT bridge_outbox_event UNIQUE (event_id),
    -- A change whose event would be longer than a message may be is refused in the
    -- application's statement: sent, every receiver would dead-letter it. The message is
    -- UTF-8, the column UTF-16: a payload of more UTF-16 code units than the limit has more
    -- UTF-8 bytes too, so this refuses only what is surely too long (exact for ASCII text).
    CONSTRAINT bridge_outbox_event_at_most_4_mib CHECK (DATALENGTH(payload) <= 8386560)
);
GO

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'bridge_outbox') AND name = N'bridge_outbox_row')
CREATE INDEX bridge_outbox_row ON bridge_outbox (row_hash) INCLUDE (created_at);
GO

-- An application statement of many rows would escalate its row locks on the outbox to a
-- table lock, which the dispatcher's READPAST reads cannot pass: no lock escalation.
ALTER TABLE bridge_outbox SET (LOCK_ESCALATION = DISABLE);
GO

-- the site's name, which the capture trigger does not repeat
ALTER TABLE bridge_outbox DROP CONSTRAINT IF EXISTS bridge_outbox_origin;
GO

ALTER TABLE bridge_outbox ADD CONSTRAINT bridge_outbox_origin DEFAULT N'PARIS' FOR origin;
GO

-- bridge_inbox: the events applied here (a redelivered one is then a no-op).
IF OBJECT_ID(N'bridge_inbox', N'U') IS NULL
CREATE TABLE bridge_inbox (
    event_id   CHAR(36)     NOT NULL CONSTRAINT bridge_inbox_pk PRIMARY KEY,
    origin     NVARCHAR(64) COLLATE Latin1_General_BIN2 NOT NULL,
    applied_at DATETIME2(6) NOT NULL CONSTRAINT bridge_inbox_applied_at DEFAULT SYSUTCDATETIME()
);
GO

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'bridge_inbox') AND name = N'bridge_inbox_applied')
CREATE INDEX bridge_inbox_applied ON bridge_inbox (applied_at);
GO

-- bridge_row_version: the last applied version of each row (tombstones for deletes),
-- what last-writer-wins compares a change with.
IF OBJECT_ID(N'bridge_row_version', N'U') IS NULL
CREATE TABLE bridge_row_version (
    row_hash   BINARY(32)    NOT NULL CONSTRAINT bridge_row_version_pk PRIMARY KEY,
    table_name NVARCHAR(300) NOT NULL,
    row_key    NVARCHAR(MAX) NOT NULL,
    ts         DATETIME2(6)  NOT NULL,
    origin     NVARCHAR(64)  COLLATE Latin1_General_BIN2 NOT NULL,
    deleted    BIT           NOT NULL CONSTRAINT bridge_row_version_deleted DEFAULT 0,
    event_id   CHAR(36)      NULL
);
GO

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'bridge_row_version') AND name = N'bridge_row_version_tombstones')
CREATE INDEX bridge_row_version_tombstones ON bridge_row_version (deleted, ts);
GO

-- bridge_conflicts: every remote change that lost or could not be applied, with both versions.
IF OBJECT_ID(N'bridge_conflicts', N'U') IS NULL
CREATE TABLE bridge_conflicts (
    id              BIGINT IDENTITY(1, 1) NOT NULL CONSTRAINT bridge_conflicts_pk PRIMARY KEY,
    detected_at     DATETIME2(6)  NOT NULL CONSTRAINT bridge_conflicts_detected_at DEFAULT SYSUTCDATETIME(),
    event_id        CHAR(36)      NOT NULL,
    table_name      NVARCHAR(300) NOT NULL,
    row_key         NVARCHAR(MAX) NOT NULL,
    reason          NVARCHAR(MAX) NOT NULL,
    incoming_ts     DATETIME2(6)  NOT NULL,
    incoming_origin NVARCHAR(64)  COLLATE Latin1_General_BIN2 NOT NULL,
    incoming        NVARCHAR(MAX) NOT NULL,
    local_ts        DATETIME2(6)  NULL,
    local_origin    NVARCHAR(64)  COLLATE Latin1_General_BIN2 NULL,
    local_row       NVARCHAR(MAX) NULL
);
GO

-- bridge_archive: every event of every site (at the archive site), for replay.
IF OBJECT_ID(N'bridge_archive', N'U') IS NULL
CREATE TABLE bridge_archive (
    event_id    CHAR(36)      NOT NULL CONSTRAINT bridge_archive_pk PRIMARY KEY,
    ts          DATETIME2(6)  NOT NULL,
    origin      NVARCHAR(64)  COLLATE Latin1_General_BIN2 NOT NULL,
    [type]      NVARCHAR(300) NOT NULL,
    event       NVARCHAR(MAX) NOT NULL,
    archived_at DATETIME2(6)  NOT NULL CONSTRAINT bridge_archive_archived_at DEFAULT SYSUTCDATETIME()
);
GO

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'bridge_archive') AND name = N'bridge_archive_ts')
CREATE INDEX bridge_archive_ts ON bridge_archive (ts);
GO

-- bridge_meta: the site's name, the capture installed on each table (version, columns
-- hash) and the dispatcher's counters.
IF OBJECT_ID(N'bridge_meta', N'U') IS NULL
CREATE TABLE bridge_meta (
    [key]      NVARCHAR(300) NOT NULL CONSTRAINT bridge_meta_pk PRIMARY KEY,
    value      NVARCHAR(MAX) NOT NULL,
    updated_at DATETIME2(6)  NOT NULL CONSTRAINT bridge_meta_updated_at DEFAULT SYSUTCDATETIME()
);
GO

MERGE INTO bridge_meta WITH (HOLDLOCK) AS m
USING (SELECT N'site' AS [key], N'PARIS' AS value) AS s
   ON m.[key] = s.[key]
 WHEN MATCHED THEN UPDATE SET value = s.value, updated_at = SYSUTCDATETIME()
 WHEN NOT MATCHED THEN INSERT ([key], value) VALUES (s.[key], s.value);
GO

-- bridge_waiting: received changes that reference a row not here yet (a child whose parent
-- has not arrived), kept and tried again after each batch until they apply.
IF OBJECT_ID(N'bridge_waiting', N'U') IS NULL
CREATE TABLE bridge_waiting (
    event_id      CHAR(36)      NOT NULL CONSTRAINT bridge_waiting_pk PRIMARY KEY,
    origin        NVARCHAR(64)  COLLATE Latin1_General_BIN2 NOT NULL,
    body          NVARCHAR(MAX) NOT NULL,
    reason        NVARCHAR(MAX) NOT NULL,
    waiting_since DATETIME2(6)  NOT NULL CONSTRAINT bridge_waiting_since DEFAULT SYSUTCDATETIME(),
    attempts      INT           NOT NULL CONSTRAINT bridge_waiting_attempts DEFAULT 1
);
GO

-- bridge_acks: what became of this site's events at each site that received them, from
-- their acks (one row per event and receiving site, the latest ack's); purged by cleanup.
IF OBJECT_ID(N'bridge_acks', N'U') IS NULL
CREATE TABLE bridge_acks (
    event_id CHAR(36)       NOT NULL,
    site     NVARCHAR(64)   COLLATE Latin1_General_BIN2 NOT NULL,
    origin   NVARCHAR(64)   COLLATE Latin1_General_BIN2 NOT NULL,
    status   NVARCHAR(16)   NOT NULL,
    reason   NVARCHAR(1000) NULL,
    acked_at DATETIME2(6)   NOT NULL CONSTRAINT bridge_acks_acked_at_default DEFAULT SYSUTCDATETIME(),
    CONSTRAINT bridge_acks_pk PRIMARY KEY (event_id, site)
);
GO

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'bridge_acks') AND name = N'bridge_acks_acked_at')
CREATE INDEX bridge_acks_acked_at ON bridge_acks (acked_at);
GO
