WITH inbox AS (
    INSERT INTO bridge_inbox (event_id, origin) VALUES (%(id)s, %(origin)s)
    ON CONFLICT (event_id) DO NOTHING
    RETURNING 1
), locked AS (
    SELECT 1 FROM "orders" AS t WHERE t."id" = CAST(%(p0)s AS bigint) FOR UPDATE
)
SELECT EXISTS (SELECT 1 FROM inbox) AS fresh,
       EXISTS (SELECT 1 FROM locked) AS present;

WITH locked AS (
    SELECT 1 FROM "orders" AS t WHERE t."id" = CAST(%(p0)s AS bigint) FOR UPDATE
)
SELECT true AS fresh,
       EXISTS (SELECT 1 FROM locked) AS present;

SELECT (SELECT jsonb_build_object('id', to_jsonb(t."id"), 'Customer', t."Customer"::text, 'amount', t."amount"::text, 'updated_at', CASE WHEN isfinite(t."updated_at") THEN to_char(t."updated_at" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') ELSE t."updated_at"::text END, 'blob', translate(encode(t."blob", 'base64'), E'\n', '')) FROM "orders" AS t
         WHERE t."id" = CAST(%(p0)s AS bigint)) AS local_row,
       rv.ts                             AS version_ts,
       rv.origin                         AS version_origin,
       (SELECT max(o.created_at) FROM bridge_outbox AS o
         WHERE o.type IN ('orders.insert', 'orders.update', 'orders.delete')
           AND o.payload -> 'key' = %(key)s::jsonb) AS pending_ts
  FROM (SELECT 1) AS one
  LEFT JOIN bridge_row_version AS rv
    ON rv.table_name = 'orders' AND rv.row_key = %(key)s::jsonb;

WITH written AS (
    INSERT INTO "orders" ("id", "Customer", "amount", "updated_at", "blob")
    VALUES (CAST(%(p0)s AS bigint), CAST(%(p1)s AS text), CAST(%(p2)s AS numeric(12,2)), CAST(%(p3)s AS timestamp with time zone), CAST(%(p4)s AS bytea))
    ON CONFLICT ("id")
    DO UPDATE SET "Customer" = EXCLUDED."Customer", "amount" = EXCLUDED."amount", "updated_at" = EXCLUDED."updated_at", "blob" = EXCLUDED."blob"
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
    INSERT INTO "orders" ("id", "Customer", "amount", "updated_at", "blob")
    VALUES (CAST(%(p0)s AS bigint), CAST(%(p1)s AS text), CAST(%(p2)s AS numeric(12,2)), CAST(%(p3)s AS timestamp with time zone), CAST(%(p4)s AS bytea))
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
    DELETE FROM "orders" WHERE "id" = CAST(%(p0)s AS bigint)
)
INSERT INTO bridge_row_version (table_name, row_key, ts, origin, deleted, event_id)
SELECT %(table)s, %(key)s::jsonb, %(ts)s, %(origin)s, %(deleted)s, %(id)s
ON CONFLICT (table_name, row_key) DO UPDATE
   SET ts = EXCLUDED.ts, origin = EXCLUDED.origin, deleted = EXCLUDED.deleted,
       event_id = EXCLUDED.event_id
 WHERE (bridge_row_version.ts, bridge_row_version.origin) < (EXCLUDED.ts, EXCLUDED.origin);

DELETE FROM "orders" WHERE "id" = CAST(%(p0)s AS bigint);
