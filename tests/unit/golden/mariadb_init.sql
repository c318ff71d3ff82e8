CREATE TABLE IF NOT EXISTS bridge_outbox (
    seq          BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    event_id     CHAR(36)     NOT NULL,
    created_at   DATETIME(6)  NOT NULL,
    origin       VARCHAR(64)  NOT NULL,
    type         VARCHAR(255) NOT NULL,
    payload      LONGTEXT     NOT NULL,
    row_hash     BINARY(32)   NOT NULL,
    tx           BIGINT       NOT NULL,
    published_at DATETIME(6)  NULL,
    attempts     INT          NOT NULL DEFAULT 0,
    echoed_at    DATETIME(6)  NULL,
    UNIQUE KEY bridge_outbox_event (event_id),
    KEY bridge_outbox_row (row_hash),    CONSTRAINT bridge_outbox_event_at_most_4_mib CHECK (LENGTH(payload) <= 4193280)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

ALTER TABLE bridge_outbox ALTER COLUMN origin SET DEFAULT 'LONDON';

CREATE TABLE IF NOT EXISTS bridge_inbox (
    event_id   CHAR(36)    NOT NULL PRIMARY KEY,
    origin     VARCHAR(64) NOT NULL,
    applied_at DATETIME(6) NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    KEY bridge_inbox_applied_at (applied_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS bridge_row_version (
    row_hash   BINARY(32)   NOT NULL PRIMARY KEY,
    table_name VARCHAR(255) NOT NULL,
    row_key    LONGTEXT     NOT NULL,
    ts         DATETIME(6)  NOT NULL,
    origin     VARCHAR(64)  NOT NULL,
    deleted    BOOLEAN      NOT NULL DEFAULT FALSE,
    event_id   CHAR(36)     NULL,
    KEY bridge_row_version_tombstones (deleted, ts)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS bridge_conflicts (
    id              BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    detected_at     DATETIME(6)  NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    event_id        CHAR(36)     NOT NULL,
    table_name      VARCHAR(255) NOT NULL,
    row_key         LONGTEXT     NOT NULL,
    reason          TEXT         NOT NULL,
    incoming_ts     DATETIME(6)  NOT NULL,
    incoming_origin VARCHAR(64)  NOT NULL,
    incoming        LONGTEXT     NOT NULL,
    local_ts        DATETIME(6)  NULL,
    local_origin    VARCHAR(64)  NULL,
    local_row       LONGTEXT     NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS bridge_archive (
    event_id    CHAR(36)     NOT NULL PRIMARY KEY,
    ts          DATETIME(6)  NOT NULL,
    origin      VARCHAR(64)  NOT NULL,
    type        VARCHAR(255) NOT NULL,
    event       LONGTEXT     NOT NULL,
    archived_at DATETIME(6)  NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    KEY bridge_archive_ts (ts)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS bridge_meta (
    `key`      VARCHAR(255) NOT NULL PRIMARY KEY,
    value      LONGTEXT     NOT NULL,
    updated_at DATETIME(6)  NOT NULL DEFAULT (UTC_TIMESTAMP(6))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

INSERT INTO bridge_meta (`key`, value) VALUES ('site', JSON_QUOTE('LONDON'))
ON DUPLICATE KEY UPDATE value = VALUES(value), updated_at = UTC_TIMESTAMP(6);

CREATE TABLE IF NOT EXISTS bridge_waiting (
    event_id      CHAR(36)    NOT NULL PRIMARY KEY,
    origin        VARCHAR(64) NOT NULL,
    body          LONGTEXT    NOT NULL,
    reason        TEXT        NOT NULL,
    waiting_since DATETIME(6) NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    attempts      INT         NOT NULL DEFAULT 1
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS bridge_acks (
    event_id CHAR(36)      NOT NULL,
    site     VARCHAR(64)   NOT NULL,
    origin   VARCHAR(64)   NOT NULL,
    status   VARCHAR(16)   NOT NULL,
    reason   VARCHAR(1000) NULL,
    acked_at DATETIME(6)   NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    PRIMARY KEY (event_id, site),
    KEY bridge_acks_acked_at (acked_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

