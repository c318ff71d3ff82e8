INSERT INTO "orders" ("id", "Customer", "amount", "updated_at", "blob")
VALUES (CAST(%(p0)s AS bigint), CAST(%(p1)s AS text), CAST(%(p2)s AS numeric(12,2)), CAST(%(p3)s AS timestamp with time zone), CAST(%(p4)s AS bytea))
ON CONFLICT ("id")
DO UPDATE SET "Customer" = EXCLUDED."Customer", "amount" = EXCLUDED."amount", "updated_at" = EXCLUDED."updated_at", "blob" = EXCLUDED."blob";

DELETE FROM "orders" WHERE "id" = CAST(%(p0)s AS bigint);

SELECT jsonb_build_object('id', to_jsonb(t."id"), 'Customer', t."Customer"::text, 'amount', t."amount"::text, 'updated_at', CASE WHEN isfinite(t."updated_at") THEN to_char(t."updated_at" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') ELSE t."updated_at"::text END, 'blob', translate(encode(t."blob", 'base64'), E'\n', '')) AS row
  FROM "orders" AS t
 WHERE t."id" = CAST(%(p0)s AS bigint)
   FOR UPDATE;
