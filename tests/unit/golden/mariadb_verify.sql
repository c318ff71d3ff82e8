SELECT COUNT(*) FROM `orders`

-- bridge:next

SELECT b.`region`, b.`id` FROM (SELECT t.`region`, t.`id`, ROW_NUMBER() OVER (ORDER BY t.`region`, t.`id`) AS bridge_n FROM `orders` AS t) AS b WHERE MOD(b.bridge_n, %(every)s) = 0 ORDER BY b.bridge_n

-- bridge:next

SELECT COUNT(*), SUM(CAST(CONV(LEFT(MD5(JSON_ARRAY(t.`region`, t.`id`, t.`customer`, CAST(t.`amount` AS CHAR), JSON_EXTRACT(CASE WHEN t.`paid` THEN 'true' WHEN NOT t.`paid` THEN 'false' END, '$'), CAST(t.`score` AS CHAR), t.`note`, CONVERT(REPLACE(TO_BASE64(t.`photo`), CHAR(10), '') USING utf8mb4), CAST(t.`token` AS CHAR), DATE_FORMAT(t.`ordered_on`, '%Y-%m-%d'), IF(LOCATE('.', CAST(t.`ships_at` AS CHAR)) > 0, TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM CAST(t.`ships_at` AS CHAR))), CAST(t.`ships_at` AS CHAR)), DATE_FORMAT(t.`updated_at`, '%Y-%m-%dT%H:%i:%s.%f'), CONCAT(DATE_FORMAT(TIMESTAMP'1970-01-01 00:00:00' + INTERVAL UNIX_TIMESTAMP(t.`shipped_at`) * 1000000 MICROSECOND, '%Y-%m-%dT%H:%i:%s.%f'), 'Z'), CAST(t.`doc` AS CHAR))), 16), 16, 10) AS UNSIGNED)) FROM `orders` AS t

-- bridge:next

SELECT b.`region`, b.`id` FROM (SELECT t.`region`, t.`id`, ROW_NUMBER() OVER (ORDER BY t.`region`, t.`id`) AS bridge_n FROM `orders` AS t WHERE (t.`region` > %(lo0)s OR (t.`region` = %(lo0)s AND t.`id` > CAST(%(lo1)s AS SIGNED))) AND (t.`region` < %(hi0)s OR (t.`region` = %(hi0)s AND t.`id` <= CAST(%(hi1)s AS SIGNED)))) AS b WHERE MOD(b.bridge_n, %(every)s) = 0 ORDER BY b.bridge_n

-- bridge:next

SELECT COUNT(*), SUM(CAST(CONV(LEFT(MD5(JSON_ARRAY(t.`region`, t.`id`, t.`customer`, CAST(t.`amount` AS CHAR), JSON_EXTRACT(CASE WHEN t.`paid` THEN 'true' WHEN NOT t.`paid` THEN 'false' END, '$'), CAST(t.`score` AS CHAR), t.`note`, CONVERT(REPLACE(TO_BASE64(t.`photo`), CHAR(10), '') USING utf8mb4), CAST(t.`token` AS CHAR), DATE_FORMAT(t.`ordered_on`, '%%Y-%%m-%%d'), IF(LOCATE('.', CAST(t.`ships_at` AS CHAR)) > 0, TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM CAST(t.`ships_at` AS CHAR))), CAST(t.`ships_at` AS CHAR)), DATE_FORMAT(t.`updated_at`, '%%Y-%%m-%%dT%%H:%%i:%%s.%%f'), CONCAT(DATE_FORMAT(TIMESTAMP'1970-01-01 00:00:00' + INTERVAL UNIX_TIMESTAMP(t.`shipped_at`) * 1000000 MICROSECOND, '%%Y-%%m-%%dT%%H:%%i:%%s.%%f'), 'Z'), CAST(t.`doc` AS CHAR))), 16), 16, 10) AS UNSIGNED)) FROM `orders` AS t WHERE (t.`region` > %(lo0)s OR (t.`region` = %(lo0)s AND t.`id` > CAST(%(lo1)s AS SIGNED))) AND (t.`region` < %(hi0)s OR (t.`region` = %(hi0)s AND t.`id` <= CAST(%(hi1)s AS SIGNED)))

-- bridge:next

SELECT t.`region`, t.`id`, CAST(CONV(LEFT(MD5(JSON_ARRAY(t.`region`, t.`id`, t.`customer`, CAST(t.`amount` AS CHAR), JSON_EXTRACT(CASE WHEN t.`paid` THEN 'true' WHEN NOT t.`paid` THEN 'false' END, '$'), CAST(t.`score` AS CHAR), t.`note`, CONVERT(REPLACE(TO_BASE64(t.`photo`), CHAR(10), '') USING utf8mb4), CAST(t.`token` AS CHAR), DATE_FORMAT(t.`ordered_on`, '%%Y-%%m-%%d'), IF(LOCATE('.', CAST(t.`ships_at` AS CHAR)) > 0, TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM CAST(t.`ships_at` AS CHAR))), CAST(t.`ships_at` AS CHAR)), DATE_FORMAT(t.`updated_at`, '%%Y-%%m-%%dT%%H:%%i:%%s.%%f'), CONCAT(DATE_FORMAT(TIMESTAMP'1970-01-01 00:00:00' + INTERVAL UNIX_TIMESTAMP(t.`shipped_at`) * 1000000 MICROSECOND, '%%Y-%%m-%%dT%%H:%%i:%%s.%%f'), 'Z'), CAST(t.`doc` AS CHAR))), 16), 16, 10) AS UNSIGNED) FROM `orders` AS t WHERE (t.`region` > %(lo0)s OR (t.`region` = %(lo0)s AND t.`id` > CAST(%(lo1)s AS SIGNED))) AND (t.`region` < %(hi0)s OR (t.`region` = %(hi0)s AND t.`id` <= CAST(%(hi1)s AS SIGNED))) ORDER BY t.`region`, t.`id`

-- bridge:next

SELECT t.`region`, t.`id`, t.`customer`, CAST(t.`amount` AS CHAR), JSON_EXTRACT(CASE WHEN t.`paid` THEN 'true' WHEN NOT t.`paid` THEN 'false' END, '$'), CAST(t.`score` AS CHAR), t.`note`, CONVERT(REPLACE(TO_BASE64(t.`photo`), CHAR(10), '') USING utf8mb4), CAST(t.`token` AS CHAR), DATE_FORMAT(t.`ordered_on`, '%%Y-%%m-%%d'), IF(LOCATE('.', CAST(t.`ships_at` AS CHAR)) > 0, TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM CAST(t.`ships_at` AS CHAR))), CAST(t.`ships_at` AS CHAR)), DATE_FORMAT(t.`updated_at`, '%%Y-%%m-%%dT%%H:%%i:%%s.%%f'), CONCAT(DATE_FORMAT(TIMESTAMP'1970-01-01 00:00:00' + INTERVAL UNIX_TIMESTAMP(t.`shipped_at`) * 1000000 MICROSECOND, '%%Y-%%m-%%dT%%H:%%i:%%s.%%f'), 'Z'), CAST(t.`doc` AS CHAR) FROM `orders` AS t WHERE (t.`region` > %(lo0)s OR (t.`region` = %(lo0)s AND t.`id` > CAST(%(lo1)s AS SIGNED))) AND (t.`region` < %(hi0)s OR (t.`region` = %(hi0)s AND t.`id` <= CAST(%(hi1)s AS SIGNED))) ORDER BY t.`region`, t.`id`
