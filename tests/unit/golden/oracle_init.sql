CREATE OR REPLACE PACKAGE bridge_session AUTHID DEFINER AS
    -- created by bridge init: used by bridge's sessions and by the capture triggers
    -- of bridge install-triggers; removed by bridge uninit
    --
    -- 1 in bridge's apply sessions (set by each apply transaction): the capture triggers
    -- do not capture their writes again (no echo)
    applying PLS_INTEGER := 0;
    -- the event the apply's next writes come from, and before a run of events, a JSON
    -- object of each row key to its event: a DBA's own trigger may read them (audit)
    event_id VARCHAR2(36 CHAR);
    events_by_key CLOB;

    -- values a template's PL/SQL block keeps for the SELECT that follows it
    PROCEDURE put_num(name IN VARCHAR2, value IN NUMBER);
    PROCEDURE put_stamp(name IN VARCHAR2, value IN TIMESTAMP);
    PROCEDURE put_str(name IN VARCHAR2, value IN VARCHAR2);
    PROCEDURE put_doc(name IN VARCHAR2, value IN CLOB);
    FUNCTION num(name IN VARCHAR2) RETURN NUMBER;
    FUNCTION stamp(name IN VARCHAR2) RETURN TIMESTAMP;
    FUNCTION str(name IN VARCHAR2) RETURN VARCHAR2;
    FUNCTION doc(name IN VARCHAR2) RETURN CLOB;

    -- base64 without line breaks, as bridge sends bytes
    FUNCTION base64_raw(value IN RAW) RETURN VARCHAR2;
    FUNCTION base64_blob(value IN BLOB) RETURN CLOB;
    -- the length in bytes (UTF-8) of a text: the capture's check of an event's size
    FUNCTION utf8_bytes(value IN CLOB) RETURN NUMBER;
    -- raises ORA-20101 saying that `what` (a column and its type) cannot hold `value`
    -- without rounding it; returns nothing (used where a value is expected)
    FUNCTION refuse(what IN VARCHAR2, value IN VARCHAR2) RETURN VARCHAR2;
END bridge_session;
/

CREATE OR REPLACE PACKAGE BODY bridge_session AS
    TYPE numbers IS TABLE OF NUMBER INDEX BY VARCHAR2(30);
    TYPE stamps IS TABLE OF TIMESTAMP(6) INDEX BY VARCHAR2(30);
    TYPE strs IS TABLE OF VARCHAR2(4000) INDEX BY VARCHAR2(30);
    TYPE docs IS TABLE OF CLOB INDEX BY VARCHAR2(30);
    kept_nums numbers;
    kept_stamps stamps;
    kept_strs strs;
    kept_docs docs;

    PROCEDURE put_num(name IN VARCHAR2, value IN NUMBER) IS
    BEGIN
        kept_nums(name) := value;
    END put_num;

    PROCEDURE put_stamp(name IN VARCHAR2, value IN TIMESTAMP) IS
    BEGIN
        kept_stamps(name) := value;
    END put_stamp;

    PROCEDURE put_str(name IN VARCHAR2, value IN VARCHAR2) IS
    BEGIN
        kept_strs(name) := value;
    END put_str;

    PROCEDURE put_doc(name IN VARCHAR2, value IN CLOB) IS
    BEGIN
        kept_docs(name) := value;
    END put_doc;

    FUNCTION num(name IN VARCHAR2) RETURN NUMBER IS
    BEGIN
        IF kept_nums.EXISTS(name) THEN
            RETURN kept_nums(name);
        END IF;
        RETURN NULL;
    END num;

    FUNCTION stamp(name IN VARCHAR2) RETURN TIMESTAMP IS
    BEGIN
        IF kept_stamps.EXISTS(name) THEN
            RETURN kept_stamps(name);
        END IF;
        RETURN NULL;
    END stamp;

    FUNCTION str(name IN VARCHAR2) RETURN VARCHAR2 IS
    BEGIN
        IF kept_strs.EXISTS(name) THEN
            RETURN kept_strs(name);
        END IF;
        RETURN NULL;
    END str;

    FUNCTION doc(name IN VARCHAR2) RETURN CLOB IS
    BEGIN
        IF kept_docs.EXISTS(name) THEN
            RETURN kept_docs(name);
        END IF;
        RETURN NULL;
    END doc;

    FUNCTION base64_raw(value IN RAW) RETURN VARCHAR2 IS
    BEGIN
        IF value IS NULL THEN
            RETURN NULL;
        END IF;
        -- UTL_ENCODE breaks its output into lines of 64 characters: joined again
        RETURN REPLACE(REPLACE(UTL_RAW.CAST_TO_VARCHAR2(UTL_ENCODE.BASE64_ENCODE(value)),
                               CHR(13)), CHR(10));
    END base64_raw;

    FUNCTION base64_blob(value IN BLOB) RETURN CLOB IS
        -- a multiple of 3 bytes: no padding inside the text; its base64 (16,000 characters
        -- and line breaks) fits UTL_ENCODE's 32,767-byte RAW
        chunk CONSTANT PLS_INTEGER := 12000;
        total NUMBER;
        pos   NUMBER := 1;
        text  VARCHAR2(32767);
        result CLOB;
    BEGIN
        IF value IS NULL THEN
            RETURN NULL;
        END IF;
        DBMS_LOB.CREATETEMPORARY(result, TRUE);
        total := DBMS_LOB.GETLENGTH(value);
        WHILE pos <= total LOOP
            text := base64_raw(DBMS_LOB.SUBSTR(value, chunk, pos));
            DBMS_LOB.WRITEAPPEND(result, LENGTH(text), text);
            pos := pos + chunk;
        END LOOP;
        RETURN result;  -- an empty BLOB gives an empty CLOB (not NULL)
    END base64_blob;

    FUNCTION utf8_bytes(value IN CLOB) RETURN NUMBER IS
        chunk CONSTANT PLS_INTEGER := 8000;
        total NUMBER;
        pos   NUMBER := 1;
        bytes NUMBER := 0;
    BEGIN
        IF value IS NULL THEN
            RETURN 0;
        END IF;
        total := DBMS_LOB.GETLENGTH(value);
        WHILE pos <= total LOOP
            bytes := bytes + LENGTHB(DBMS_LOB.SUBSTR(value, chunk, pos));
            pos := pos + chunk;
        END LOOP;
        RETURN bytes;
    END utf8_bytes;

    FUNCTION refuse(what IN VARCHAR2, value IN VARCHAR2) RETURN VARCHAR2 IS
    BEGIN
        RAISE_APPLICATION_ERROR(-20101,
            'bridge: column ' || what || ' cannot hold the value ' || SUBSTR(value, 1, 200)
            || ' exactly (Oracle would round or truncate it): not written');
        RETURN NULL;
    END refuse;
END bridge_session;
/

DECLARE
    found PLS_INTEGER;
BEGIN
    SELECT COUNT(*) INTO found FROM user_tables WHERE table_name = 'BRIDGE_OUTBOX';
    IF found = 0 THEN
        EXECUTE IMMEDIATE q'[
CREATE TABLE bridge_outbox (
    seq          NUMBER(19)        GENERATED ALWAYS AS IDENTITY,
    event_id     VARCHAR2(36 CHAR) NOT NULL,
    created_at   TIMESTAMP(6)      NOT NULL,
    origin       VARCHAR2(64 CHAR) NOT NULL,
    type         VARCHAR2(300 CHAR) NOT NULL,
    payload      CLOB              NOT NULL,
    row_hash     RAW(32)           NOT NULL,
    tx           VARCHAR2(64 CHAR) NOT NULL,
    published_at TIMESTAMP(6),
    attempts     NUMBER(10)        DEFAULT 0 NOT NULL,
    echoed_at    TIMESTAMP(6),
    CONSTRAINT bridge_outbox_pk PRIMARY KEY (seq),
    CONSTRAINT bridge_outbox_event UNIQUE (event_id),
    CONSTRAINT bridge_outbox_event_at_most_4_mib CHECK (LENGTH(payload) <= 4193280)
)
]';
    END IF;
END;
/

DECLARE
    found PLS_INTEGER;
BEGIN
    SELECT COUNT(*) INTO found FROM user_indexes WHERE index_name = 'BRIDGE_OUTBOX_ROW';
    IF found = 0 THEN
        EXECUTE IMMEDIATE 'CREATE INDEX bridge_outbox_row ON bridge_outbox (row_hash)';
    END IF;
END;
/

ALTER TABLE bridge_outbox MODIFY (origin DEFAULT 'PARIS');

COMMENT ON TABLE bridge_outbox IS 'bridge: changes captured at this site, until the broker confirmed them and their echo came back (bridge status)';

DECLARE
    found PLS_INTEGER;
BEGIN
    SELECT COUNT(*) INTO found FROM user_tables WHERE table_name = 'BRIDGE_INBOX';
    IF found = 0 THEN
        EXECUTE IMMEDIATE q'[
CREATE TABLE bridge_inbox (
    event_id   VARCHAR2(36 CHAR) NOT NULL,
    origin     VARCHAR2(64 CHAR) NOT NULL,
    applied_at TIMESTAMP(6)      DEFAULT SYS_EXTRACT_UTC(SYSTIMESTAMP) NOT NULL,
    CONSTRAINT bridge_inbox_pk PRIMARY KEY (event_id)
)
]';
    END IF;
END;
/

DECLARE
    found PLS_INTEGER;
BEGIN
    SELECT COUNT(*) INTO found FROM user_indexes WHERE index_name = 'BRIDGE_INBOX_APPLIED_AT';
    IF found = 0 THEN
        EXECUTE IMMEDIATE 'CREATE INDEX bridge_inbox_applied_at ON bridge_inbox (applied_at)';
    END IF;
END;
/

COMMENT ON TABLE bridge_inbox IS 'bridge: events applied here, so that a redelivered one is not applied twice (purged by bridge cleanup)';

DECLARE
    found PLS_INTEGER;
BEGIN
    SELECT COUNT(*) INTO found FROM user_tables WHERE table_name = 'BRIDGE_ROW_VERSION';
    IF found = 0 THEN
        EXECUTE IMMEDIATE q'[
CREATE TABLE bridge_row_version (
    row_hash   RAW(32)            NOT NULL,
    table_name VARCHAR2(300 CHAR) NOT NULL,
    row_key    CLOB               NOT NULL,
    ts         TIMESTAMP(6)       NOT NULL,
    origin     VARCHAR2(64 CHAR)  NOT NULL,
    deleted    NUMBER(1)          DEFAULT 0 NOT NULL,
    event_id   VARCHAR2(36 CHAR),
    CONSTRAINT bridge_row_version_pk PRIMARY KEY (row_hash)
)
]';
    END IF;
END;
/

DECLARE
    found PLS_INTEGER;
BEGIN
    SELECT COUNT(*) INTO found FROM user_indexes WHERE index_name = 'BRIDGE_ROW_VERSION_TOMBSTONES';
    IF found = 0 THEN
        EXECUTE IMMEDIATE 'CREATE INDEX bridge_row_version_tombstones ON bridge_row_version (deleted, ts)';
    END IF;
END;
/

COMMENT ON TABLE bridge_row_version IS 'bridge: the last applied version of each synced row, tombstones of deleted ones (last writer wins)';

DECLARE
    found PLS_INTEGER;
BEGIN
    SELECT COUNT(*) INTO found FROM user_tables WHERE table_name = 'BRIDGE_CONFLICTS';
    IF found = 0 THEN
        EXECUTE IMMEDIATE q'[
CREATE TABLE bridge_conflicts (
    id              NUMBER(19)         GENERATED ALWAYS AS IDENTITY,
    detected_at     TIMESTAMP(6)       DEFAULT SYS_EXTRACT_UTC(SYSTIMESTAMP) NOT NULL,
    event_id        VARCHAR2(36 CHAR)  NOT NULL,
    table_name      VARCHAR2(300 CHAR) NOT NULL,
    row_key         CLOB               NOT NULL,
    reason          CLOB               NOT NULL,
    incoming_ts     TIMESTAMP(6)       NOT NULL,
    incoming_origin VARCHAR2(64 CHAR)  NOT NULL,
    incoming        CLOB               NOT NULL,
    local_ts        TIMESTAMP(6),
    local_origin    VARCHAR2(64 CHAR),
    local_row       CLOB,
    CONSTRAINT bridge_conflicts_pk PRIMARY KEY (id)
)
]';
    END IF;
END;
/

COMMENT ON TABLE bridge_conflicts IS 'bridge: every received change that lost or could not be applied, with both versions';

DECLARE
    found PLS_INTEGER;
BEGIN
    SELECT COUNT(*) INTO found FROM user_tables WHERE table_name = 'BRIDGE_ARCHIVE';
    IF found = 0 THEN
        EXECUTE IMMEDIATE q'[
CREATE TABLE bridge_archive (
    event_id    VARCHAR2(36 CHAR)  NOT NULL,
    ts          TIMESTAMP(6)       NOT NULL,
    origin      VARCHAR2(64 CHAR)  NOT NULL,
    type        VARCHAR2(300 CHAR) NOT NULL,
    event       CLOB               NOT NULL,
    archived_at TIMESTAMP(6)       DEFAULT SYS_EXTRACT_UTC(SYSTIMESTAMP) NOT NULL,
    CONSTRAINT bridge_archive_pk PRIMARY KEY (event_id)
)
]';
    END IF;
END;
/

COMMENT ON TABLE bridge_archive IS 'bridge: every event of every site, at the archive site (replay)';

DECLARE
    found PLS_INTEGER;
BEGIN
    SELECT COUNT(*) INTO found FROM user_tables WHERE table_name = 'BRIDGE_META';
    IF found = 0 THEN
        EXECUTE IMMEDIATE q'[
CREATE TABLE bridge_meta (
    key        VARCHAR2(300 CHAR) NOT NULL,
    value      CLOB               NOT NULL,
    updated_at TIMESTAMP(6)       DEFAULT SYS_EXTRACT_UTC(SYSTIMESTAMP) NOT NULL,
    CONSTRAINT bridge_meta_pk PRIMARY KEY (key)
)
]';
    END IF;
END;
/

COMMENT ON TABLE bridge_meta IS 'bridge: the site name, the version of each capture trigger and the columns it was made for, counters';

MERGE INTO bridge_meta m
USING (SELECT 'site' AS key, '"' || 'PARIS' || '"' AS value FROM DUAL) s
   ON (m.key = s.key)
 WHEN MATCHED THEN UPDATE SET m.value = s.value, m.updated_at = SYS_EXTRACT_UTC(SYSTIMESTAMP)
 WHEN NOT MATCHED THEN INSERT (key, value) VALUES (s.key, s.value);

DECLARE
    found PLS_INTEGER;
BEGIN
    SELECT COUNT(*) INTO found FROM user_tables WHERE table_name = 'BRIDGE_WAITING';
    IF found = 0 THEN
        EXECUTE IMMEDIATE q'[
CREATE TABLE bridge_waiting (
    event_id      VARCHAR2(36 CHAR) NOT NULL,
    origin        VARCHAR2(64 CHAR) NOT NULL,
    body          CLOB              NOT NULL,
    reason        CLOB              NOT NULL,
    waiting_since TIMESTAMP(6)      DEFAULT SYS_EXTRACT_UTC(SYSTIMESTAMP) NOT NULL,
    attempts      NUMBER(10)        DEFAULT 1 NOT NULL,
    CONSTRAINT bridge_waiting_pk PRIMARY KEY (event_id)
)
]';
    END IF;
END;
/

COMMENT ON TABLE bridge_waiting IS 'bridge: received changes waiting for a row they reference (tried again after each batch)';

DECLARE
    found PLS_INTEGER;
BEGIN
    SELECT COUNT(*) INTO found FROM user_tables WHERE table_name = 'BRIDGE_ACKS';
    IF found = 0 THEN
        EXECUTE IMMEDIATE q'[
CREATE TABLE bridge_acks (
    event_id VARCHAR2(36 CHAR)   NOT NULL,
    site     VARCHAR2(64 CHAR)   NOT NULL,
    origin   VARCHAR2(64 CHAR)   NOT NULL,
    status   VARCHAR2(16 CHAR)   NOT NULL,
    reason   VARCHAR2(1000 CHAR),
    acked_at TIMESTAMP(6)        DEFAULT SYS_EXTRACT_UTC(SYSTIMESTAMP) NOT NULL,
    CONSTRAINT bridge_acks_pk PRIMARY KEY (event_id, site)
)
]';
    END IF;
END;
/

DECLARE
    found PLS_INTEGER;
BEGIN
    SELECT COUNT(*) INTO found FROM user_indexes WHERE index_name = 'BRIDGE_ACKS_ACKED_AT';
    IF found = 0 THEN
        EXECUTE IMMEDIATE 'CREATE INDEX bridge_acks_acked_at ON bridge_acks (acked_at)';
    END IF;
END;
/

COMMENT ON TABLE bridge_acks IS 'bridge: what became of this site''s events at each site that received them (acks; purged by bridge cleanup)';
