WITH inbox AS (
    INSERT INTO bridge_inbox (event_id, origin) VALUES (%(id)s, %(origin)s)
    ON CONFLICT (event_id) DO NOTHING
    RETURNING 1
), locked AS (
    SELECT t.ctid FROM "orders" AS t WHERE t."id" = CAST(%(p1)s AS bigint) FOR UPDATE
)
SELECT EXISTS (SELECT 1 FROM inbox) AS fresh,
       EXISTS (SELECT 1 FROM locked) AS present,
       (SELECT ctid FROM locked) IS NOT DISTINCT FROM
           (SELECT t.ctid FROM "orders" AS t WHERE t."id" = CAST(%(p1)s AS bigint)) AS settled,
       (SELECT pg_catalog.jsonb_build_object('id', pg_catalog.to_jsonb(t."id"), 'Customer', t."Customer"::text, 'Amount', t."Amount"::text, 'updated_at', CASE WHEN NOT pg_catalog.isfinite(t."updated_at") THEN t."updated_at"::text WHEN t."updated_at" < '0001-01-01 00:00:00+00' THEN pg_catalog.to_char(t."updated_at" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z BC"') ELSE pg_catalog.to_char(t."updated_at" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') END, 'blob', pg_catalog.translate(pg_catalog.encode(t."blob", 'base64'), E'\n', ''), 'doc', t."doc"::text, 'legacy', t."legacy"::text, 'tags', t."tags"::text, 'seq', pg_catalog.to_jsonb(t."seq")) FROM "orders" AS t
         WHERE t."id" = CAST(%(p1)s AS bigint)) AS local_row,
       rv.ts                             AS version_ts,
       rv.origin                         AS version_origin,
       (SELECT max(o.created_at) FROM bridge_outbox AS o
         WHERE o.type IN ('orders.insert', 'orders.update', 'orders.delete')
           AND o.payload -> 'key' = %(key)s::jsonb) AS pending_ts,
       set_config('bridge.event', %(id)s::text, true) AS event
FROM (SELECT 1) AS one
  LEFT JOIN bridge_row_version AS rv
    ON rv.table_name = 'orders' AND rv.row_key = %(key)s::jsonb;

WITH locked AS (
    SELECT t.ctid FROM "orders" AS t WHERE t."id" = CAST(%(p1)s AS bigint) FOR UPDATE
)
SELECT true AS fresh,
       EXISTS (SELECT 1 FROM locked) AS present;

SELECT (SELECT pg_catalog.jsonb_build_object('id', pg_catalog.to_jsonb(t."id"), 'Customer', t."Customer"::text, 'Amount', t."Amount"::text, 'updated_at', CASE WHEN NOT pg_catalog.isfinite(t."updated_at") THEN t."updated_at"::text WHEN t."updated_at" < '0001-01-01 00:00:00+00' THEN pg_catalog.to_char(t."updated_at" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z BC"') ELSE pg_catalog.to_char(t."updated_at" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') END, 'blob', pg_catalog.translate(pg_catalog.encode(t."blob", 'base64'), E'\n', ''), 'doc', t."doc"::text, 'legacy', t."legacy"::text, 'tags', t."tags"::text, 'seq', pg_catalog.to_jsonb(t."seq")) FROM "orders" AS t
         WHERE t."id" = CAST(%(p1)s AS bigint)) AS local_row,
       rv.ts                             AS version_ts,
       rv.origin                         AS version_origin,
       (SELECT max(o.created_at) FROM bridge_outbox AS o
         WHERE o.type IN ('orders.insert', 'orders.update', 'orders.delete')
           AND o.payload -> 'key' = %(key)s::jsonb) AS pending_ts
FROM (SELECT 1) AS one
  LEFT JOIN bridge_row_version AS rv
    ON rv.table_name = 'orders' AND rv.row_key = %(key)s::jsonb;

WITH written AS (
    INSERT INTO "orders" ("id", "Customer", "Amount", "updated_at", "blob", "doc", "legacy", "tags", "seq")
    OVERRIDING SYSTEM VALUE
    VALUES (CAST(%(p1)s AS bigint), CAST(%(p2)s AS text), CAST(%(p3)s AS numeric(12,2)), CAST(%(p4)s AS timestamp with time zone), CAST(%(p5)s AS bytea), CAST(%(p7)s AS jsonb), CAST(%(p8)s AS json), CAST(%(p9)s AS text[]), CAST(%(p10)s AS bigint))
    ON CONFLICT ("id")
    DO UPDATE SET "Customer" = EXCLUDED."Customer", "Amount" = EXCLUDED."Amount", "updated_at" = EXCLUDED."updated_at", "blob" = EXCLUDED."blob", "doc" = EXCLUDED."doc", "legacy" = EXCLUDED."legacy", "tags" = EXCLUDED."tags"
    RETURNING 1
), version AS (
    INSERT INTO bridge_row_version (table_name, row_key, ts, origin, deleted, event_id)
    SELECT %(table)s, %(key)s::jsonb, %(ts)s, %(origin)s, %(deleted)s, %(id)s
    ON CONFLICT (table_name, row_key) DO UPDATE
       SET ts = EXCLUDED.ts, origin = EXCLUDED.origin, deleted = EXCLUDED.deleted,
           event_id = EXCLUDED.event_id
     WHERE (bridge_row_version.ts, bridge_row_version.origin) < (EXCLUDED.ts, EXCLUDED.origin)
)
SELECT count(*) FROM written;

WITH written AS (
    INSERT INTO "orders" ("id", "Customer", "Amount", "updated_at", "blob", "doc", "legacy", "tags", "seq")
    OVERRIDING SYSTEM VALUE
    VALUES (CAST(%(p1)s AS bigint), CAST(%(p2)s AS text), CAST(%(p3)s AS numeric(12,2)), CAST(%(p4)s AS timestamp with time zone), CAST(%(p5)s AS bytea), CAST(%(p7)s AS jsonb), CAST(%(p8)s AS json), CAST(%(p9)s AS text[]), CAST(%(p10)s AS bigint))
    ON CONFLICT ("id")
    DO NOTHING
    RETURNING 1
)
SELECT count(*) FROM written;

WITH unchanged AS (
    SELECT 1
      FROM (SELECT 1) AS one
      LEFT JOIN bridge_row_version AS rv
        ON rv.table_name = 'orders' AND rv.row_key = %(key)s::jsonb
     WHERE rv.ts IS NOT DISTINCT FROM %(decided_ts)s::timestamptz
       AND rv.origin IS NOT DISTINCT FROM %(decided_origin)s::text
       AND (SELECT max(o.created_at) FROM bridge_outbox AS o
             WHERE o.type IN ('orders.insert', 'orders.update', 'orders.delete')
               AND o.payload -> 'key' = %(key)s::jsonb)
           IS NOT DISTINCT FROM %(decided_pending)s::timestamptz
), version AS (
    INSERT INTO bridge_row_version (table_name, row_key, ts, origin, deleted, event_id)
    SELECT %(table)s, %(key)s::jsonb, %(ts)s, %(origin)s, %(deleted)s, %(id)s
     WHERE EXISTS (SELECT 1 FROM unchanged)
    ON CONFLICT (table_name, row_key) DO UPDATE
       SET ts = EXCLUDED.ts, origin = EXCLUDED.origin, deleted = EXCLUDED.deleted,
           event_id = EXCLUDED.event_id
     WHERE (bridge_row_version.ts, bridge_row_version.origin) < (EXCLUDED.ts, EXCLUDED.origin)
)
SELECT EXISTS (SELECT 1 FROM unchanged);

WITH removed AS (
    DELETE FROM "orders" WHERE "id" = CAST(%(p1)s AS bigint)
)
INSERT INTO bridge_row_version (table_name, row_key, ts, origin, deleted, event_id)
SELECT %(table)s, %(key)s::jsonb, %(ts)s, %(origin)s, %(deleted)s, %(id)s
ON CONFLICT (table_name, row_key) DO UPDATE
   SET ts = EXCLUDED.ts, origin = EXCLUDED.origin, deleted = EXCLUDED.deleted,
       event_id = EXCLUDED.event_id
 WHERE (bridge_row_version.ts, bridge_row_version.origin) < (EXCLUDED.ts, EXCLUDED.origin);

INSERT INTO bridge_row_version (table_name, row_key, ts, origin, deleted, event_id)
SELECT %(table)s, %(key)s::jsonb, %(ts)s, %(origin)s, %(deleted)s, %(id)s
ON CONFLICT (table_name, row_key) DO UPDATE
   SET ts = EXCLUDED.ts, origin = EXCLUDED.origin, deleted = EXCLUDED.deleted,
       event_id = EXCLUDED.event_id
 WHERE (bridge_row_version.ts, bridge_row_version.origin) < (EXCLUDED.ts, EXCLUDED.origin);

DELETE FROM "orders" WHERE "id" = CAST(%(p1)s AS bigint);

WITH written AS (
    INSERT INTO "orders" ("id", "Customer", "Amount", "updated_at", "blob", "legacy", "tags", "seq")
    OVERRIDING SYSTEM VALUE
    VALUES (CAST(%(p1)s AS bigint), CAST(%(p2)s AS text), CAST(%(p3)s AS numeric(12,2)), CAST(%(p4)s AS timestamp with time zone), CAST(%(p5)s AS bytea), CAST(%(p8)s AS json), (SELECT x.v FROM jsonb_to_record(%(p9)s) AS x(v text[])), CAST(%(p10)s AS bigint))
    ON CONFLICT ("id")
    DO UPDATE SET "Customer" = EXCLUDED."Customer", "Amount" = EXCLUDED."Amount", "updated_at" = EXCLUDED."updated_at", "blob" = EXCLUDED."blob", "doc" = DEFAULT, "legacy" = EXCLUDED."legacy", "tags" = EXCLUDED."tags"
    RETURNING 1
), version AS (
    INSERT INTO bridge_row_version (table_name, row_key, ts, origin, deleted, event_id)
    SELECT %(table)s, %(key)s::jsonb, %(ts)s, %(origin)s, %(deleted)s, %(id)s
    ON CONFLICT (table_name, row_key) DO UPDATE
       SET ts = EXCLUDED.ts, origin = EXCLUDED.origin, deleted = EXCLUDED.deleted,
           event_id = EXCLUDED.event_id
     WHERE (bridge_row_version.ts, bridge_row_version.origin) < (EXCLUDED.ts, EXCLUDED.origin)
)
SELECT count(*) FROM written;

WITH written AS (
    INSERT INTO "orders" ("id", "Customer", "Amount", "updated_at", "blob", "legacy", "tags", "seq")
    OVERRIDING SYSTEM VALUE
    VALUES (CAST(%(p1)s AS bigint), CAST(%(p2)s AS text), CAST(%(p3)s AS numeric(12,2)), CAST(%(p4)s AS timestamp with time zone), CAST(%(p5)s AS bytea), CAST(%(p8)s AS json), (SELECT x.v FROM jsonb_to_record(%(p9)s) AS x(v text[])), CAST(%(p10)s AS bigint))
    ON CONFLICT ("id")
    DO NOTHING
    RETURNING 1
)
SELECT count(*) FROM written;

SELECT CAST(%(theirs)s AS timestamp with time zone) <= CAST(%(mine)s AS timestamp with time zone);

SELECT pg_catalog.to_jsonb("id"), "Customer"::text, "Amount"::text, CASE WHEN NOT pg_catalog.isfinite("updated_at") THEN "updated_at"::text WHEN "updated_at" < '0001-01-01 00:00:00+00' THEN pg_catalog.to_char("updated_at" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z BC"') ELSE pg_catalog.to_char("updated_at" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') END, pg_catalog.translate(pg_catalog.encode("blob", 'base64'), E'\n', ''), "doc"::text, "legacy"::text, "tags"::text, pg_catalog.to_jsonb("seq") FROM "orders";
