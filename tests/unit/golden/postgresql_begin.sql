SELECT set_config('bridge.applying', 'on', true), set_config('jit', 'off', true),
       pg_catalog.set_config('extra_float_digits', '1', true), pg_catalog.set_config('bytea_output', 'hex', true), pg_catalog.set_config('DateStyle', 'ISO, YMD', true), pg_catalog.set_config('IntervalStyle', 'postgres', true),
       EXISTS (SELECT 1 FROM bridge_waiting) AS waiting,
       ARRAY[
           (SELECT count(*) || ':' || sum(a.xmin::text::bigint) || ':'
                   || coalesce((SELECT max(i.xmin::text) FROM pg_index AS i
                                 WHERE i.indrelid = a.attrelid AND i.indisprimary), '')
              FROM pg_attribute AS a WHERE a.attrelid = to_regclass('orders') GROUP BY a.attrelid),
           (SELECT count(*) || ':' || sum(a.xmin::text::bigint) || ':'
                   || coalesce((SELECT max(i.xmin::text) FROM pg_index AS i
                                 WHERE i.indrelid = a.attrelid AND i.indisprimary), '')
              FROM pg_attribute AS a WHERE a.attrelid = to_regclass('"sales"."orders"') GROUP BY a.attrelid)
       ]::text[] AS fingerprints;

SELECT pg_catalog.set_config('extra_float_digits', '1', true), pg_catalog.set_config('bytea_output', 'hex', true), pg_catalog.set_config('DateStyle', 'ISO, YMD', true), pg_catalog.set_config('IntervalStyle', 'postgres', true), set_config('TimeZone', 'UTC', true);
