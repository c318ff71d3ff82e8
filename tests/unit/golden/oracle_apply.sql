DECLARE
    found PLS_INTEGER := 0;
BEGIN
    bridge_session.event_id := %(id)s;
    bridge_session.put_str('event', %(id)s);
    BEGIN
        INSERT INTO bridge_inbox (event_id, origin) VALUES (%(id)s, %(origin)s);
        bridge_session.put_num('fresh', 1);
    EXCEPTION
        WHEN DUP_VAL_ON_INDEX THEN  -- applied before: a redelivery
            bridge_session.put_num('fresh', 0);
    END;
    FOR r IN (SELECT 1 FROM "ORDERS" t WHERE t."REGION" = %(p1)s AND t."ID" = CASE WHEN ROUND(TO_NUMBER(%(p2)s), 0) = TO_NUMBER(%(p2)s) THEN TO_NUMBER(%(p2)s) ELSE TO_NUMBER(bridge_session.refuse('id NUMBER(19)', %(p2)s)) END FOR UPDATE) LOOP
        found := 1;
    END LOOP;
    bridge_session.put_num('present', found);
END;
/

SELECT bridge_session.num('fresh') AS fresh, bridge_session.num('present') AS present,
       1 AS settled,
       (SELECT JSON_OBJECT('region' VALUE t."REGION", 'id' VALUE TO_CHAR(t."ID", 'TM9') FORMAT JSON, 'customer' VALUE t."CUSTOMER", 'amount' VALUE TO_CHAR(t."AMOUNT", 'FM9999999990.00'), 'rate' VALUE REGEXP_REPLACE(TO_CHAR(t."RATE", 'TM9'), '^(-?)\.', '\10.'), 'paid' VALUE CASE t."PAID" WHEN 1 THEN 'true' WHEN 0 THEN 'false' ELSE TO_CHAR(t."PAID", 'TM9') END FORMAT JSON, 'score' VALUE CASE WHEN t."SCORE" IS NAN THEN 'NaN' WHEN t."SCORE" IS INFINITE THEN CASE WHEN t."SCORE" > 0 THEN 'Infinity' ELSE '-Infinity' END ELSE REGEXP_REPLACE(TO_CHAR(t."SCORE", 'TM9'), '^(-?)\.', '\10.') END, 'note' VALUE t."NOTE", 'photo' VALUE bridge_session.base64_blob(t."PHOTO"), 'token' VALUE LOWER(REGEXP_REPLACE(RAWTOHEX(t."TOKEN"), '^(.{8})(.{4})(.{4})(.{4})(.{12})$', '\1-\2-\3-\4-\5')), 'checksum' VALUE bridge_session.base64_raw(t."CHECKSUM"), 'ordered_on' VALUE TO_CHAR(t."ORDERED_ON", 'YYYY-MM-DD"T"HH24:MI:SS".000000"') || CASE WHEN EXTRACT(YEAR FROM t."ORDERED_ON") < 0 THEN ' BC' END, 'updated_at' VALUE TO_CHAR(t."UPDATED_AT", 'YYYY-MM-DD"T"HH24:MI:SS.FF6') || CASE WHEN EXTRACT(YEAR FROM t."UPDATED_AT") < 0 THEN ' BC' END, 'shipped_at' VALUE TO_CHAR(SYS_EXTRACT_UTC(t."SHIPPED_AT"), 'YYYY-MM-DD"T"HH24:MI:SS.FF6"Z"') || CASE WHEN EXTRACT(YEAR FROM SYS_EXTRACT_UTC(t."SHIPPED_AT")) < 0 THEN ' BC' END, 'doc' VALUE t."DOC" NULL ON NULL RETURNING CLOB) FROM "ORDERS" t
         WHERE t."REGION" = %(p1)s AND t."ID" = CASE WHEN ROUND(TO_NUMBER(%(p2)s), 0) = TO_NUMBER(%(p2)s) THEN TO_NUMBER(%(p2)s) ELSE TO_NUMBER(bridge_session.refuse('id NUMBER(19)', %(p2)s)) END) AS local_row,
       rv.ts                             AS version_ts,
       rv.origin                         AS version_origin,
       (SELECT MAX(o.created_at) FROM bridge_outbox o
         WHERE o.row_hash = STANDARD_HASH(%(table)s || CHR(10) || %(key)s, 'SHA256')) AS pending_ts,
       bridge_session.str('event') AS event
FROM DUAL
  LEFT JOIN bridge_row_version rv
    ON rv.row_hash = STANDARD_HASH(%(table)s || CHR(10) || %(key)s, 'SHA256');

DECLARE
    found PLS_INTEGER := 0;
BEGIN
    bridge_session.put_num('fresh', 1);
    FOR r IN (SELECT 1 FROM "ORDERS" t WHERE t."REGION" = %(p1)s AND t."ID" = CASE WHEN ROUND(TO_NUMBER(%(p2)s), 0) = TO_NUMBER(%(p2)s) THEN TO_NUMBER(%(p2)s) ELSE TO_NUMBER(bridge_session.refuse('id NUMBER(19)', %(p2)s)) END FOR UPDATE) LOOP
        found := 1;
    END LOOP;
    bridge_session.put_num('present', found);
END;
/

SELECT bridge_session.num('fresh') AS fresh, bridge_session.num('present') AS present
  FROM DUAL;

SELECT (SELECT JSON_OBJECT('region' VALUE t."REGION", 'id' VALUE TO_CHAR(t."ID", 'TM9') FORMAT JSON, 'customer' VALUE t."CUSTOMER", 'amount' VALUE TO_CHAR(t."AMOUNT", 'FM9999999990.00'), 'rate' VALUE REGEXP_REPLACE(TO_CHAR(t."RATE", 'TM9'), '^(-?)\.', '\10.'), 'paid' VALUE CASE t."PAID" WHEN 1 THEN 'true' WHEN 0 THEN 'false' ELSE TO_CHAR(t."PAID", 'TM9') END FORMAT JSON, 'score' VALUE CASE WHEN t."SCORE" IS NAN THEN 'NaN' WHEN t."SCORE" IS INFINITE THEN CASE WHEN t."SCORE" > 0 THEN 'Infinity' ELSE '-Infinity' END ELSE REGEXP_REPLACE(TO_CHAR(t."SCORE", 'TM9'), '^(-?)\.', '\10.') END, 'note' VALUE t."NOTE", 'photo' VALUE bridge_session.base64_blob(t."PHOTO"), 'token' VALUE LOWER(REGEXP_REPLACE(RAWTOHEX(t."TOKEN"), '^(.{8})(.{4})(.{4})(.{4})(.{12})$', '\1-\2-\3-\4-\5')), 'checksum' VALUE bridge_session.base64_raw(t."CHECKSUM"), 'ordered_on' VALUE TO_CHAR(t."ORDERED_ON", 'YYYY-MM-DD"T"HH24:MI:SS".000000"') || CASE WHEN EXTRACT(YEAR FROM t."ORDERED_ON") < 0 THEN ' BC' END, 'updated_at' VALUE TO_CHAR(t."UPDATED_AT", 'YYYY-MM-DD"T"HH24:MI:SS.FF6') || CASE WHEN EXTRACT(YEAR FROM t."UPDATED_AT") < 0 THEN ' BC' END, 'shipped_at' VALUE TO_CHAR(SYS_EXTRACT_UTC(t."SHIPPED_AT"), 'YYYY-MM-DD"T"HH24:MI:SS.FF6"Z"') || CASE WHEN EXTRACT(YEAR FROM SYS_EXTRACT_UTC(t."SHIPPED_AT")) < 0 THEN ' BC' END, 'doc' VALUE t."DOC" NULL ON NULL RETURNING CLOB) FROM "ORDERS" t
         WHERE t."REGION" = %(p1)s AND t."ID" = CASE WHEN ROUND(TO_NUMBER(%(p2)s), 0) = TO_NUMBER(%(p2)s) THEN TO_NUMBER(%(p2)s) ELSE TO_NUMBER(bridge_session.refuse('id NUMBER(19)', %(p2)s)) END) AS local_row,
       rv.ts                             AS version_ts,
       rv.origin                         AS version_origin,
       (SELECT MAX(o.created_at) FROM bridge_outbox o
         WHERE o.row_hash = STANDARD_HASH(%(table)s || CHR(10) || %(key)s, 'SHA256')) AS pending_ts
FROM DUAL
  LEFT JOIN bridge_row_version rv
    ON rv.row_hash = STANDARD_HASH(%(table)s || CHR(10) || %(key)s, 'SHA256');

UPDATE "ORDERS" SET "CUSTOMER" = %(p3)s, "AMOUNT" = CASE WHEN ROUND(TO_NUMBER(%(p4)s), 2) = TO_NUMBER(%(p4)s) THEN TO_NUMBER(%(p4)s) ELSE TO_NUMBER(bridge_session.refuse('amount NUMBER(12, 2)', %(p4)s)) END, "RATE" = TO_NUMBER(%(p5)s), "PAID" = CASE %(p6)s WHEN 'true' THEN 1 WHEN 'false' THEN 0 ELSE TO_NUMBER(bridge_session.refuse('paid NUMBER(1)', %(p6)s)) END, "SCORE" = CASE %(p7)s WHEN 'Infinity' THEN BINARY_DOUBLE_INFINITY WHEN '-Infinity' THEN -BINARY_DOUBLE_INFINITY WHEN 'NaN' THEN BINARY_DOUBLE_NAN ELSE TO_BINARY_DOUBLE(%(p7)s) END, "NOTE" = %(p8)s, "PHOTO" = %(p9)s, "TOKEN" = HEXTORAW(CASE WHEN LENGTH(%(p10)s) = 36 THEN REPLACE(%(p10)s, '-') ELSE bridge_session.refuse('token RAW(16)', %(p10)s) END), "CHECKSUM" = %(p11)s, "ORDERED_ON" = CASE WHEN LENGTH(%(p12)s) = 10 THEN TO_DATE(%(p12)s, 'YYYY-MM-DD') ELSE CAST(CASE WHEN CAST(TO_TIMESTAMP(%(p12)s, 'YYYY-MM-DD"T"HH24:MI:SS.FF') AS TIMESTAMP(0)) = TO_TIMESTAMP(%(p12)s, 'YYYY-MM-DD"T"HH24:MI:SS.FF') THEN TO_TIMESTAMP(%(p12)s, 'YYYY-MM-DD"T"HH24:MI:SS.FF') ELSE TO_TIMESTAMP(bridge_session.refuse('ordered_on DATE', %(p12)s)) END AS DATE) END, "UPDATED_AT" = TO_TIMESTAMP(%(p13)s, 'YYYY-MM-DD"T"HH24:MI:SS.FF'), "SHIPPED_AT" = TO_TIMESTAMP_TZ(REPLACE(%(p14)s, 'Z', '+00:00'), 'YYYY-MM-DD"T"HH24:MI:SS.FFTZH:TZM'), "DOC" = %(p15)s
 WHERE "REGION" = %(p1)s AND "ID" = CASE WHEN ROUND(TO_NUMBER(%(p2)s), 0) = TO_NUMBER(%(p2)s) THEN TO_NUMBER(%(p2)s) ELSE TO_NUMBER(bridge_session.refuse('id NUMBER(19)', %(p2)s)) END;

MERGE INTO bridge_row_version rv
USING (SELECT STANDARD_HASH(%(table)s || CHR(10) || %(key)s, 'SHA256') AS row_hash, %(table)s AS table_name,
              %(key)s AS row_key, %(ts)s AS ts, %(origin)s AS origin, %(deleted)s AS deleted,
              %(id)s AS event_id
         FROM DUAL) s
   ON (rv.row_hash = s.row_hash)
 WHEN MATCHED THEN UPDATE SET rv.ts = s.ts, rv.origin = s.origin, rv.deleted = s.deleted, rv.event_id = s.event_id
      WHERE rv.ts < s.ts OR (rv.ts = s.ts AND rv.origin < s.origin)
 WHEN NOT MATCHED THEN INSERT (row_hash, table_name, row_key, ts, origin, deleted, event_id)
      VALUES (s.row_hash, s.table_name, s.row_key, s.ts, s.origin, s.deleted, s.event_id);

DECLARE
    existing PLS_INTEGER;
BEGIN
    INSERT INTO "ORDERS" ("REGION", "ID", "CUSTOMER", "AMOUNT", "RATE", "PAID", "SCORE", "NOTE", "PHOTO", "TOKEN", "CHECKSUM", "ORDERED_ON", "UPDATED_AT", "SHIPPED_AT", "DOC")
    VALUES (%(p1)s, CASE WHEN ROUND(TO_NUMBER(%(p2)s), 0) = TO_NUMBER(%(p2)s) THEN TO_NUMBER(%(p2)s) ELSE TO_NUMBER(bridge_session.refuse('id NUMBER(19)', %(p2)s)) END, %(p3)s, CASE WHEN ROUND(TO_NUMBER(%(p4)s), 2) = TO_NUMBER(%(p4)s) THEN TO_NUMBER(%(p4)s) ELSE TO_NUMBER(bridge_session.refuse('amount NUMBER(12, 2)', %(p4)s)) END, TO_NUMBER(%(p5)s), CASE %(p6)s WHEN 'true' THEN 1 WHEN 'false' THEN 0 ELSE TO_NUMBER(bridge_session.refuse('paid NUMBER(1)', %(p6)s)) END, CASE %(p7)s WHEN 'Infinity' THEN BINARY_DOUBLE_INFINITY WHEN '-Infinity' THEN -BINARY_DOUBLE_INFINITY WHEN 'NaN' THEN BINARY_DOUBLE_NAN ELSE TO_BINARY_DOUBLE(%(p7)s) END, %(p8)s, %(p9)s, HEXTORAW(CASE WHEN LENGTH(%(p10)s) = 36 THEN REPLACE(%(p10)s, '-') ELSE bridge_session.refuse('token RAW(16)', %(p10)s) END), %(p11)s, CASE WHEN LENGTH(%(p12)s) = 10 THEN TO_DATE(%(p12)s, 'YYYY-MM-DD') ELSE CAST(CASE WHEN CAST(TO_TIMESTAMP(%(p12)s, 'YYYY-MM-DD"T"HH24:MI:SS.FF') AS TIMESTAMP(0)) = TO_TIMESTAMP(%(p12)s, 'YYYY-MM-DD"T"HH24:MI:SS.FF') THEN TO_TIMESTAMP(%(p12)s, 'YYYY-MM-DD"T"HH24:MI:SS.FF') ELSE TO_TIMESTAMP(bridge_session.refuse('ordered_on DATE', %(p12)s)) END AS DATE) END, TO_TIMESTAMP(%(p13)s, 'YYYY-MM-DD"T"HH24:MI:SS.FF'), TO_TIMESTAMP_TZ(REPLACE(%(p14)s, 'Z', '+00:00'), 'YYYY-MM-DD"T"HH24:MI:SS.FFTZH:TZM'), %(p15)s);
    bridge_session.put_num('written', SQL%ROWCOUNT);
EXCEPTION
    WHEN DUP_VAL_ON_INDEX THEN
        SELECT COUNT(*) INTO existing FROM "ORDERS" t WHERE t."REGION" = %(p1)s AND t."ID" = CASE WHEN ROUND(TO_NUMBER(%(p2)s), 0) = TO_NUMBER(%(p2)s) THEN TO_NUMBER(%(p2)s) ELSE TO_NUMBER(bridge_session.refuse('id NUMBER(19)', %(p2)s)) END;
        IF existing = 0 THEN
            RAISE;  -- another unique key: the row cannot be written here
        END IF;
        bridge_session.put_num('written', 0);
END;
/

SELECT bridge_session.num('written') AS written FROM DUAL;

DECLARE
    unchanged NUMBER;
BEGIN
    SELECT CASE WHEN DECODE(rv.ts, %(decided_ts)s, 1, 0) = 1
                 AND DECODE(rv.origin, %(decided_origin)s, 1, 0) = 1
                 AND DECODE((SELECT MAX(o.created_at) FROM bridge_outbox o
                              WHERE o.row_hash = STANDARD_HASH(%(table)s || CHR(10) || %(key)s, 'SHA256')),
                            %(decided_pending)s, 1, 0) = 1
                THEN 1 ELSE 0 END
      INTO unchanged
      FROM DUAL
      LEFT JOIN bridge_row_version rv ON rv.row_hash = STANDARD_HASH(%(table)s || CHR(10) || %(key)s, 'SHA256');
    bridge_session.put_num('unchanged', unchanged);
END;
/

MERGE INTO bridge_row_version rv
USING (SELECT STANDARD_HASH(%(table)s || CHR(10) || %(key)s, 'SHA256') AS row_hash, %(table)s AS table_name,
              %(key)s AS row_key, %(ts)s AS ts, %(origin)s AS origin, %(deleted)s AS deleted,
              %(id)s AS event_id
         FROM DUAL WHERE bridge_session.num('unchanged') = 1) s
   ON (rv.row_hash = s.row_hash)
 WHEN MATCHED THEN UPDATE SET rv.ts = s.ts, rv.origin = s.origin, rv.deleted = s.deleted, rv.event_id = s.event_id
      WHERE rv.ts < s.ts OR (rv.ts = s.ts AND rv.origin < s.origin)
 WHEN NOT MATCHED THEN INSERT (row_hash, table_name, row_key, ts, origin, deleted, event_id)
      VALUES (s.row_hash, s.table_name, s.row_key, s.ts, s.origin, s.deleted, s.event_id);

SELECT bridge_session.num('unchanged') AS unchanged FROM DUAL;

DELETE FROM "ORDERS" WHERE "REGION" = %(p1)s AND "ID" = CASE WHEN ROUND(TO_NUMBER(%(p2)s), 0) = TO_NUMBER(%(p2)s) THEN TO_NUMBER(%(p2)s) ELSE TO_NUMBER(bridge_session.refuse('id NUMBER(19)', %(p2)s)) END;

MERGE INTO bridge_row_version rv
USING (SELECT STANDARD_HASH(%(table)s || CHR(10) || %(key)s, 'SHA256') AS row_hash, %(table)s AS table_name,
              %(key)s AS row_key, %(ts)s AS ts, %(origin)s AS origin, %(deleted)s AS deleted,
              %(id)s AS event_id
         FROM DUAL) s
   ON (rv.row_hash = s.row_hash)
 WHEN MATCHED THEN UPDATE SET rv.ts = s.ts, rv.origin = s.origin, rv.deleted = s.deleted, rv.event_id = s.event_id
      WHERE rv.ts < s.ts OR (rv.ts = s.ts AND rv.origin < s.origin)
 WHEN NOT MATCHED THEN INSERT (row_hash, table_name, row_key, ts, origin, deleted, event_id)
      VALUES (s.row_hash, s.table_name, s.row_key, s.ts, s.origin, s.deleted, s.event_id);

MERGE INTO bridge_row_version rv
USING (SELECT STANDARD_HASH(%(table)s || CHR(10) || %(key)s, 'SHA256') AS row_hash, %(table)s AS table_name,
              %(key)s AS row_key, %(ts)s AS ts, %(origin)s AS origin, %(deleted)s AS deleted,
              %(id)s AS event_id
         FROM DUAL) s
   ON (rv.row_hash = s.row_hash)
 WHEN MATCHED THEN UPDATE SET rv.ts = s.ts, rv.origin = s.origin, rv.deleted = s.deleted, rv.event_id = s.event_id
      WHERE rv.ts < s.ts OR (rv.ts = s.ts AND rv.origin < s.origin)
 WHEN NOT MATCHED THEN INSERT (row_hash, table_name, row_key, ts, origin, deleted, event_id)
      VALUES (s.row_hash, s.table_name, s.row_key, s.ts, s.origin, s.deleted, s.event_id);

DELETE FROM "ORDERS" WHERE "REGION" = %(p1)s AND "ID" = CASE WHEN ROUND(TO_NUMBER(%(p2)s), 0) = TO_NUMBER(%(p2)s) THEN TO_NUMBER(%(p2)s) ELSE TO_NUMBER(bridge_session.refuse('id NUMBER(19)', %(p2)s)) END;

UPDATE "ORDERS" SET "CUSTOMER" = %(p3)s, "AMOUNT" = CASE WHEN ROUND(TO_NUMBER(%(p4)s), 2) = TO_NUMBER(%(p4)s) THEN TO_NUMBER(%(p4)s) ELSE TO_NUMBER(bridge_session.refuse('amount NUMBER(12, 2)', %(p4)s)) END, "RATE" = TO_NUMBER(%(p5)s), "PAID" = CASE %(p6)s WHEN 'true' THEN 1 WHEN 'false' THEN 0 ELSE TO_NUMBER(bridge_session.refuse('paid NUMBER(1)', %(p6)s)) END, "SCORE" = CASE %(p7)s WHEN 'Infinity' THEN BINARY_DOUBLE_INFINITY WHEN '-Infinity' THEN -BINARY_DOUBLE_INFINITY WHEN 'NaN' THEN BINARY_DOUBLE_NAN ELSE TO_BINARY_DOUBLE(%(p7)s) END, "NOTE" = DEFAULT, "PHOTO" = %(p9)s, "TOKEN" = HEXTORAW(CASE WHEN LENGTH(%(p10)s) = 36 THEN REPLACE(%(p10)s, '-') ELSE bridge_session.refuse('token RAW(16)', %(p10)s) END), "CHECKSUM" = %(p11)s, "ORDERED_ON" = CASE WHEN LENGTH(%(p12)s) = 10 THEN TO_DATE(%(p12)s, 'YYYY-MM-DD') ELSE CAST(CASE WHEN CAST(TO_TIMESTAMP(%(p12)s, 'YYYY-MM-DD"T"HH24:MI:SS.FF') AS TIMESTAMP(0)) = TO_TIMESTAMP(%(p12)s, 'YYYY-MM-DD"T"HH24:MI:SS.FF') THEN TO_TIMESTAMP(%(p12)s, 'YYYY-MM-DD"T"HH24:MI:SS.FF') ELSE TO_TIMESTAMP(bridge_session.refuse('ordered_on DATE', %(p12)s)) END AS DATE) END, "UPDATED_AT" = TO_TIMESTAMP(%(p13)s, 'YYYY-MM-DD"T"HH24:MI:SS.FF'), "SHIPPED_AT" = TO_TIMESTAMP_TZ(REPLACE(%(p14)s, 'Z', '+00:00'), 'YYYY-MM-DD"T"HH24:MI:SS.FFTZH:TZM'), "DOC" = %(p15)s
 WHERE "REGION" = %(p1)s AND "ID" = CASE WHEN ROUND(TO_NUMBER(%(p2)s), 0) = TO_NUMBER(%(p2)s) THEN TO_NUMBER(%(p2)s) ELSE TO_NUMBER(bridge_session.refuse('id NUMBER(19)', %(p2)s)) END;

MERGE INTO bridge_row_version rv
USING (SELECT STANDARD_HASH(%(table)s || CHR(10) || %(key)s, 'SHA256') AS row_hash, %(table)s AS table_name,
              %(key)s AS row_key, %(ts)s AS ts, %(origin)s AS origin, %(deleted)s AS deleted,
              %(id)s AS event_id
         FROM DUAL) s
   ON (rv.row_hash = s.row_hash)
 WHEN MATCHED THEN UPDATE SET rv.ts = s.ts, rv.origin = s.origin, rv.deleted = s.deleted, rv.event_id = s.event_id
      WHERE rv.ts < s.ts OR (rv.ts = s.ts AND rv.origin < s.origin)
 WHEN NOT MATCHED THEN INSERT (row_hash, table_name, row_key, ts, origin, deleted, event_id)
      VALUES (s.row_hash, s.table_name, s.row_key, s.ts, s.origin, s.deleted, s.event_id);

DECLARE
    existing PLS_INTEGER;
BEGIN
    INSERT INTO "ORDERS" ("REGION", "ID", "CUSTOMER", "AMOUNT", "RATE", "PAID", "SCORE", "PHOTO", "TOKEN", "CHECKSUM", "ORDERED_ON", "UPDATED_AT", "SHIPPED_AT", "DOC")
    VALUES (%(p1)s, CASE WHEN ROUND(TO_NUMBER(%(p2)s), 0) = TO_NUMBER(%(p2)s) THEN TO_NUMBER(%(p2)s) ELSE TO_NUMBER(bridge_session.refuse('id NUMBER(19)', %(p2)s)) END, %(p3)s, CASE WHEN ROUND(TO_NUMBER(%(p4)s), 2) = TO_NUMBER(%(p4)s) THEN TO_NUMBER(%(p4)s) ELSE TO_NUMBER(bridge_session.refuse('amount NUMBER(12, 2)', %(p4)s)) END, TO_NUMBER(%(p5)s), CASE %(p6)s WHEN 'true' THEN 1 WHEN 'false' THEN 0 ELSE TO_NUMBER(bridge_session.refuse('paid NUMBER(1)', %(p6)s)) END, CASE %(p7)s WHEN 'Infinity' THEN BINARY_DOUBLE_INFINITY WHEN '-Infinity' THEN -BINARY_DOUBLE_INFINITY WHEN 'NaN' THEN BINARY_DOUBLE_NAN ELSE TO_BINARY_DOUBLE(%(p7)s) END, %(p9)s, HEXTORAW(CASE WHEN LENGTH(%(p10)s) = 36 THEN REPLACE(%(p10)s, '-') ELSE bridge_session.refuse('token RAW(16)', %(p10)s) END), %(p11)s, CASE WHEN LENGTH(%(p12)s) = 10 THEN TO_DATE(%(p12)s, 'YYYY-MM-DD') ELSE CAST(CASE WHEN CAST(TO_TIMESTAMP(%(p12)s, 'YYYY-MM-DD"T"HH24:MI:SS.FF') AS TIMESTAMP(0)) = TO_TIMESTAMP(%(p12)s, 'YYYY-MM-DD"T"HH24:MI:SS.FF') THEN TO_TIMESTAMP(%(p12)s, 'YYYY-MM-DD"T"HH24:MI:SS.FF') ELSE TO_TIMESTAMP(bridge_session.refuse('ordered_on DATE', %(p12)s)) END AS DATE) END, TO_TIMESTAMP(%(p13)s, 'YYYY-MM-DD"T"HH24:MI:SS.FF'), TO_TIMESTAMP_TZ(REPLACE(%(p14)s, 'Z', '+00:00'), 'YYYY-MM-DD"T"HH24:MI:SS.FFTZH:TZM'), %(p15)s);
    bridge_session.put_num('written', SQL%ROWCOUNT);
EXCEPTION
    WHEN DUP_VAL_ON_INDEX THEN
        SELECT COUNT(*) INTO existing FROM "ORDERS" t WHERE t."REGION" = %(p1)s AND t."ID" = CASE WHEN ROUND(TO_NUMBER(%(p2)s), 0) = TO_NUMBER(%(p2)s) THEN TO_NUMBER(%(p2)s) ELSE TO_NUMBER(bridge_session.refuse('id NUMBER(19)', %(p2)s)) END;
        IF existing = 0 THEN
            RAISE;  -- another unique key: the row cannot be written here
        END IF;
        bridge_session.put_num('written', 0);
END;
/

SELECT bridge_session.num('written') AS written FROM DUAL;

SELECT CASE WHEN TO_TIMESTAMP(%(theirs)s, 'YYYY-MM-DD"T"HH24:MI:SS.FF') <= TO_TIMESTAMP(%(mine)s, 'YYYY-MM-DD"T"HH24:MI:SS.FF') THEN 1 ELSE 0 END FROM DUAL;

SELECT "REGION", "ID", "CUSTOMER", TO_CHAR("AMOUNT", 'FM9999999990.00'), REGEXP_REPLACE(TO_CHAR("RATE", 'TM9'), '^(-?)\.', '\10.'), CASE "PAID" WHEN 1 THEN 'true' WHEN 0 THEN 'false' ELSE TO_CHAR("PAID", 'TM9') END, CASE WHEN "SCORE" IS NAN THEN 'NaN' WHEN "SCORE" IS INFINITE THEN CASE WHEN "SCORE" > 0 THEN 'Infinity' ELSE '-Infinity' END ELSE REGEXP_REPLACE(TO_CHAR("SCORE", 'TM9'), '^(-?)\.', '\10.') END, "NOTE", bridge_session.base64_blob("PHOTO"), LOWER(REGEXP_REPLACE(RAWTOHEX("TOKEN"), '^(.{8})(.{4})(.{4})(.{4})(.{12})$', '\1-\2-\3-\4-\5')), bridge_session.base64_raw("CHECKSUM"), TO_CHAR("ORDERED_ON", 'YYYY-MM-DD"T"HH24:MI:SS".000000"') || CASE WHEN EXTRACT(YEAR FROM "ORDERED_ON") < 0 THEN ' BC' END, TO_CHAR("UPDATED_AT", 'YYYY-MM-DD"T"HH24:MI:SS.FF6') || CASE WHEN EXTRACT(YEAR FROM "UPDATED_AT") < 0 THEN ' BC' END, TO_CHAR(SYS_EXTRACT_UTC("SHIPPED_AT"), 'YYYY-MM-DD"T"HH24:MI:SS.FF6"Z"') || CASE WHEN EXTRACT(YEAR FROM SYS_EXTRACT_UTC("SHIPPED_AT")) < 0 THEN ' BC' END, "DOC" FROM "ORDERS";

BEGIN
    bridge_session.applying := 1;
END;
/

SELECT CASE WHEN EXISTS (SELECT 1 FROM bridge_waiting) THEN 1 ELSE 0 END AS waiting,
       JSON_ARRAY(
           (SELECT TO_CHAR(COUNT(*)) || ':' || TO_CHAR(SUM(ORA_HASH(
                       c.column_id || ' ' || c.column_name || ' ' || c.data_type || ' ' || c.data_precision
                       || ' ' || c.data_scale || ' ' || c.char_length || ' ' || c.nullable || ' '
                       || (SELECT MAX(cc.position)
                             FROM all_cons_columns cc
                             JOIN all_constraints k
                               ON k.owner = cc.owner AND k.constraint_name = cc.constraint_name
                            WHERE k.constraint_type = 'P' AND k.owner = c.owner
                              AND k.table_name = c.table_name AND cc.column_name = c.column_name))))
              FROM all_tab_cols c
             WHERE c.owner = SYS_CONTEXT('USERENV', 'CURRENT_SCHEMA')
               AND c.table_name = 'orders' AND c.hidden_column = 'NO'),
           (SELECT TO_CHAR(COUNT(*)) || ':' || TO_CHAR(SUM(ORA_HASH(
                       c.column_id || ' ' || c.column_name || ' ' || c.data_type || ' ' || c.data_precision
                       || ' ' || c.data_scale || ' ' || c.char_length || ' ' || c.nullable || ' '
                       || (SELECT MAX(cc.position)
                             FROM all_cons_columns cc
                             JOIN all_constraints k
                               ON k.owner = cc.owner AND k.constraint_name = cc.constraint_name
                            WHERE k.constraint_type = 'P' AND k.owner = c.owner
                              AND k.table_name = c.table_name AND cc.column_name = c.column_name))))
              FROM all_tab_cols c
             WHERE c.owner = 'APP'
               AND c.table_name = 'Lines' AND c.hidden_column = 'NO')
       NULL ON NULL RETURNING CLOB) AS fingerprints
  FROM DUAL;
