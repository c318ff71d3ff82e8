INSERT INTO bridge_inbox (event_id, origin) VALUES (%(id)s, %(origin)s)
ON DUPLICATE KEY UPDATE event_id = event_id
-- bridge:statement
SET @bridge_fresh = (ROW_COUNT() = 1), @bridge_event = %(id)s, @bridge_present = FALSE
-- bridge:statement
SELECT TRUE INTO @bridge_present FROM `orders` AS t WHERE t.`region` = %(p1)s AND t.`id` = %(p2)s FOR UPDATE
-- bridge:statement
SELECT @bridge_fresh AS fresh, @bridge_present AS present,
       TRUE AS settled,
       (SELECT JSON_OBJECT('region', t.`region`, 'id', t.`id`, 'customer', t.`customer`, 'amount', CAST(t.`amount` AS CHAR), 'paid', JSON_EXTRACT(CASE WHEN t.`paid` THEN 'true' WHEN NOT t.`paid` THEN 'false' END, '$'), 'score', CAST(t.`score` AS CHAR), 'note', t.`note`, 'photo', CONVERT(REPLACE(TO_BASE64(t.`photo`), CHAR(10), '') USING utf8mb4), 'token', CAST(t.`token` AS CHAR), 'ordered_on', DATE_FORMAT(t.`ordered_on`, '%%Y-%%m-%%d'), 'ships_at', IF(LOCATE('.', CAST(t.`ships_at` AS CHAR)) > 0, TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM CAST(t.`ships_at` AS CHAR))), CAST(t.`ships_at` AS CHAR)), 'updated_at', DATE_FORMAT(t.`updated_at`, '%%Y-%%m-%%dT%%H:%%i:%%s.%%f'), 'shipped_at', CONCAT(DATE_FORMAT(TIMESTAMP'1970-01-01 00:00:00' + INTERVAL UNIX_TIMESTAMP(t.`shipped_at`) * 1000000 MICROSECOND, '%%Y-%%m-%%dT%%H:%%i:%%s.%%f'), 'Z'), 'doc', CAST(t.`doc` AS CHAR)) FROM `orders` AS t
         WHERE t.`region` = %(p1)s AND t.`id` = %(p2)s) AS local_row,
       rv.ts                             AS version_ts,
       rv.origin                         AS version_origin,
       (SELECT MAX(o.created_at) FROM bridge_outbox AS o
         WHERE o.row_hash = UNHEX(SHA2(CONCAT(%(table)s, CHAR(10), %(key)s), 256))) AS pending_ts,
       @bridge_event AS event
FROM (SELECT 1) AS one
  LEFT JOIN bridge_row_version AS rv
    ON rv.row_hash = UNHEX(SHA2(CONCAT(%(table)s, CHAR(10), %(key)s), 256))

-- bridge:next

SET @bridge_fresh = TRUE, @bridge_present = FALSE
-- bridge:statement
SELECT TRUE INTO @bridge_present FROM `orders` AS t WHERE t.`region` = %(p1)s AND t.`id` = %(p2)s FOR UPDATE
-- bridge:statement
SELECT @bridge_fresh AS fresh, @bridge_present AS present

-- bridge:next

SELECT (SELECT JSON_OBJECT('region', t.`region`, 'id', t.`id`, 'customer', t.`customer`, 'amount', CAST(t.`amount` AS CHAR), 'paid', JSON_EXTRACT(CASE WHEN t.`paid` THEN 'true' WHEN NOT t.`paid` THEN 'false' END, '$'), 'score', CAST(t.`score` AS CHAR), 'note', t.`note`, 'photo', CONVERT(REPLACE(TO_BASE64(t.`photo`), CHAR(10), '') USING utf8mb4), 'token', CAST(t.`token` AS CHAR), 'ordered_on', DATE_FORMAT(t.`ordered_on`, '%%Y-%%m-%%d'), 'ships_at', IF(LOCATE('.', CAST(t.`ships_at` AS CHAR)) > 0, TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM CAST(t.`ships_at` AS CHAR))), CAST(t.`ships_at` AS CHAR)), 'updated_at', DATE_FORMAT(t.`updated_at`, '%%Y-%%m-%%dT%%H:%%i:%%s.%%f'), 'shipped_at', CONCAT(DATE_FORMAT(TIMESTAMP'1970-01-01 00:00:00' + INTERVAL UNIX_TIMESTAMP(t.`shipped_at`) * 1000000 MICROSECOND, '%%Y-%%m-%%dT%%H:%%i:%%s.%%f'), 'Z'), 'doc', CAST(t.`doc` AS CHAR)) FROM `orders` AS t
         WHERE t.`region` = %(p1)s AND t.`id` = %(p2)s) AS local_row,
       rv.ts                             AS version_ts,
       rv.origin                         AS version_origin,
       (SELECT MAX(o.created_at) FROM bridge_outbox AS o
         WHERE o.row_hash = UNHEX(SHA2(CONCAT(%(table)s, CHAR(10), %(key)s), 256))) AS pending_ts
FROM (SELECT 1) AS one
  LEFT JOIN bridge_row_version AS rv
    ON rv.row_hash = UNHEX(SHA2(CONCAT(%(table)s, CHAR(10), %(key)s), 256))

-- bridge:next

UPDATE `orders` SET `customer` = %(p3)s, `amount` = %(p4)s, `paid` = CASE %(p5)s WHEN 'true' THEN 1 WHEN 'false' THEN 0 ELSE %(p5)s END, `score` = %(p6)s, `note` = %(p7)s, `photo` = %(p8)s, `token` = %(p9)s, `ordered_on` = %(p10)s, `ships_at` = %(p11)s, `updated_at` = REPLACE(REPLACE(%(p12)s, 'T', ' '), 'Z', ''), `shipped_at` = REPLACE(REPLACE(%(p13)s, 'T', ' '), 'Z', ''), `doc` = %(p14)s
 WHERE `region` = %(p1)s AND `id` = %(p2)s
-- bridge:statement
INSERT INTO bridge_row_version (row_hash, table_name, row_key, ts, origin, deleted, event_id)
SELECT UNHEX(SHA2(CONCAT(%(table)s, CHAR(10), %(key)s), 256)), %(table)s, %(key)s, %(ts)s, %(origin)s, %(deleted)s, %(id)s
  FROM DUAL
ON DUPLICATE KEY UPDATE
   event_id = IF(@bridge_newer := ((ts, origin) < (VALUES(ts), VALUES(origin))), VALUES(event_id), event_id),
   deleted = IF(@bridge_newer, VALUES(deleted), deleted),
   origin = IF(@bridge_newer, VALUES(origin), origin),
   ts = IF(@bridge_newer, VALUES(ts), ts)

-- bridge:next

INSERT INTO `orders` (`region`, `id`, `customer`, `amount`, `paid`, `score`, `note`, `photo`, `token`, `ordered_on`, `ships_at`, `updated_at`, `shipped_at`, `doc`)
VALUES (%(p1)s, %(p2)s, %(p3)s, %(p4)s, CASE %(p5)s WHEN 'true' THEN 1 WHEN 'false' THEN 0 ELSE %(p5)s END, %(p6)s, %(p7)s, %(p8)s, %(p9)s, %(p10)s, %(p11)s, REPLACE(REPLACE(%(p12)s, 'T', ' '), 'Z', ''), REPLACE(REPLACE(%(p13)s, 'T', ' '), 'Z', ''), %(p14)s)
-- bridge:statement
SELECT ROW_COUNT()

-- bridge:next

SET @bridge_unchanged = EXISTS (
    SELECT 1
      FROM (SELECT 1) AS one
      LEFT JOIN bridge_row_version AS rv ON rv.row_hash = UNHEX(SHA2(CONCAT(%(table)s, CHAR(10), %(key)s), 256))
     WHERE rv.ts <=> %(decided_ts)s
       AND rv.origin <=> %(decided_origin)s
       AND (SELECT MAX(o.created_at) FROM bridge_outbox AS o
             WHERE o.row_hash = UNHEX(SHA2(CONCAT(%(table)s, CHAR(10), %(key)s), 256))) <=> %(decided_pending)s)
-- bridge:statement
INSERT INTO bridge_row_version (row_hash, table_name, row_key, ts, origin, deleted, event_id)
SELECT UNHEX(SHA2(CONCAT(%(table)s, CHAR(10), %(key)s), 256)), %(table)s, %(key)s, %(ts)s, %(origin)s, %(deleted)s, %(id)s
  FROM DUAL WHERE @bridge_unchanged
ON DUPLICATE KEY UPDATE
   event_id = IF(@bridge_newer := ((ts, origin) < (VALUES(ts), VALUES(origin))), VALUES(event_id), event_id),
   deleted = IF(@bridge_newer, VALUES(deleted), deleted),
   origin = IF(@bridge_newer, VALUES(origin), origin),
   ts = IF(@bridge_newer, VALUES(ts), ts)
-- bridge:statement
SELECT @bridge_unchanged

-- bridge:next

DELETE FROM `orders` WHERE `region` = %(p1)s AND `id` = %(p2)s
-- bridge:statement
INSERT INTO bridge_row_version (row_hash, table_name, row_key, ts, origin, deleted, event_id)
SELECT UNHEX(SHA2(CONCAT(%(table)s, CHAR(10), %(key)s), 256)), %(table)s, %(key)s, %(ts)s, %(origin)s, %(deleted)s, %(id)s
  FROM DUAL
ON DUPLICATE KEY UPDATE
   event_id = IF(@bridge_newer := ((ts, origin) < (VALUES(ts), VALUES(origin))), VALUES(event_id), event_id),
   deleted = IF(@bridge_newer, VALUES(deleted), deleted),
   origin = IF(@bridge_newer, VALUES(origin), origin),
   ts = IF(@bridge_newer, VALUES(ts), ts)

-- bridge:next

INSERT INTO bridge_row_version (row_hash, table_name, row_key, ts, origin, deleted, event_id)
SELECT UNHEX(SHA2(CONCAT(%(table)s, CHAR(10), %(key)s), 256)), %(table)s, %(key)s, %(ts)s, %(origin)s, %(deleted)s, %(id)s
  FROM DUAL
ON DUPLICATE KEY UPDATE
   event_id = IF(@bridge_newer := ((ts, origin) < (VALUES(ts), VALUES(origin))), VALUES(event_id), event_id),
   deleted = IF(@bridge_newer, VALUES(deleted), deleted),
   origin = IF(@bridge_newer, VALUES(origin), origin),
   ts = IF(@bridge_newer, VALUES(ts), ts)

-- bridge:next

DELETE FROM `orders` WHERE `region` = %(p1)s AND `id` = %(p2)s

-- bridge:next

UPDATE `orders` SET `customer` = %(p3)s, `amount` = %(p4)s, `paid` = CASE %(p5)s WHEN 'true' THEN 1 WHEN 'false' THEN 0 ELSE %(p5)s END, `score` = %(p6)s, `note` = %(p7)s, `photo` = %(p8)s, `token` = %(p9)s, `ordered_on` = %(p10)s, `ships_at` = %(p11)s, `updated_at` = REPLACE(REPLACE(%(p12)s, 'T', ' '), 'Z', ''), `shipped_at` = REPLACE(REPLACE(%(p13)s, 'T', ' '), 'Z', ''), `doc` = DEFAULT(`doc`)
 WHERE `region` = %(p1)s AND `id` = %(p2)s
-- bridge:statement
INSERT INTO bridge_row_version (row_hash, table_name, row_key, ts, origin, deleted, event_id)
SELECT UNHEX(SHA2(CONCAT(%(table)s, CHAR(10), %(key)s), 256)), %(table)s, %(key)s, %(ts)s, %(origin)s, %(deleted)s, %(id)s
  FROM DUAL
ON DUPLICATE KEY UPDATE
   event_id = IF(@bridge_newer := ((ts, origin) < (VALUES(ts), VALUES(origin))), VALUES(event_id), event_id),
   deleted = IF(@bridge_newer, VALUES(deleted), deleted),
   origin = IF(@bridge_newer, VALUES(origin), origin),
   ts = IF(@bridge_newer, VALUES(ts), ts)

-- bridge:next

SELECT CAST(%(theirs)s AS DECIMAL(65, 30)) <= CAST(%(mine)s AS DECIMAL(65, 30))

-- bridge:next

SELECT `region`, `id`, `customer`, CAST(`amount` AS CHAR), JSON_EXTRACT(CASE WHEN `paid` THEN 'true' WHEN NOT `paid` THEN 'false' END, '$'), CAST(`score` AS CHAR), `note`, CONVERT(REPLACE(TO_BASE64(`photo`), CHAR(10), '') USING utf8mb4), CAST(`token` AS CHAR), DATE_FORMAT(`ordered_on`, '%Y-%m-%d'), IF(LOCATE('.', CAST(`ships_at` AS CHAR)) > 0, TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM CAST(`ships_at` AS CHAR))), CAST(`ships_at` AS CHAR)), DATE_FORMAT(`updated_at`, '%Y-%m-%dT%H:%i:%s.%f'), CONCAT(DATE_FORMAT(TIMESTAMP'1970-01-01 00:00:00' + INTERVAL UNIX_TIMESTAMP(`shipped_at`) * 1000000 MICROSECOND, '%Y-%m-%dT%H:%i:%s.%f'), 'Z'), CAST(`doc` AS CHAR) FROM `orders`

-- bridge:next

SET @bridge_event = %(id)s, @bridge_seq = NULL, @bridge_published = NULL,
    @bridge_v_deleted = NULL, @bridge_v_ts = NULL, @bridge_v_origin = NULL, @bridge_v_id = NULL
-- bridge:statement
SELECT seq, published_at INTO @bridge_seq, @bridge_published
  FROM bridge_outbox WHERE event_id = %(id)s FOR UPDATE
-- bridge:statement
DELETE FROM bridge_outbox WHERE seq = @bridge_seq AND @bridge_published IS NOT NULL
-- bridge:statement
UPDATE bridge_outbox SET echoed_at = UTC_TIMESTAMP(6)
 WHERE seq = @bridge_seq AND @bridge_published IS NULL
-- bridge:statement
SET @bridge_unconfirmed = (ROW_COUNT() > 0)
-- bridge:statement
SELECT deleted, ts, origin, event_id
  INTO @bridge_v_deleted, @bridge_v_ts, @bridge_v_origin, @bridge_v_id
  FROM bridge_row_version WHERE row_hash = UNHEX(SHA2(CONCAT(%(table)s, CHAR(10), %(key)s), 256))
-- bridge:statement
INSERT INTO bridge_row_version (row_hash, table_name, row_key, ts, origin, deleted, event_id)
SELECT UNHEX(SHA2(CONCAT(%(table)s, CHAR(10), %(key)s), 256)), %(table)s, %(key)s, %(ts)s, %(origin)s, %(deleted)s, %(id)s
  FROM DUAL
ON DUPLICATE KEY UPDATE
   event_id = IF(@bridge_newer := ((ts, origin) < (VALUES(ts), VALUES(origin))), VALUES(event_id), event_id),
   deleted = IF(@bridge_newer, VALUES(deleted), deleted),
   origin = IF(@bridge_newer, VALUES(origin), origin),
   ts = IF(@bridge_newer, VALUES(ts), ts)
-- bridge:statement
SELECT CAST(@bridge_published AS DATETIME(6)) AS published_at,
       @bridge_v_deleted AS deleted, CAST(@bridge_v_ts AS DATETIME(6)) AS ts,
       @bridge_v_origin AS origin, @bridge_v_id AS event_id,
       @bridge_event AS event, @bridge_unconfirmed AS unconfirmed
