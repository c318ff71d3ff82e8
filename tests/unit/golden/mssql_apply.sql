SET NOCOUNT ON;
DECLARE @bridge_fresh bit = 1, @bridge_present bit = 0;
INSERT INTO bridge_inbox (event_id, origin)
SELECT CAST(%(id)s AS char(36)), CAST(%(origin)s AS nvarchar(max))
 WHERE NOT EXISTS (SELECT 1 FROM bridge_inbox WITH (UPDLOCK, HOLDLOCK)
                    WHERE event_id = CAST(%(id)s AS char(36)));
SET @bridge_fresh = CASE WHEN @@ROWCOUNT = 1 THEN 1 ELSE 0 END;
EXEC sys.sp_set_session_context @key = N'bridge.event', @value = %(id)s;
SELECT @bridge_present = 1
  FROM [orders] AS t WITH (UPDLOCK, HOLDLOCK, ROWLOCK)
 WHERE t.[region] = CAST(%(p1)s AS nvarchar(max)) AND t.[id] = CAST(%(p2)s AS bigint);
SELECT @bridge_fresh AS fresh, @bridge_present AS present,
       CAST(1 AS bit) AS settled,
       (SELECT (SELECT t.[region] AS [region],
                       t.[id] AS [id],
                       t.[lines] AS [lines],
                       t.[Customer] AS [Customer],
                       t.[notes] AS [notes],
                       t.[code] AS [code],
                       CONVERT(nvarchar(50), t.[amount]) AS [amount],
                       t.[paid] AS [paid],
                       CASE WHEN t.[placed_at] IS NOT NULL THEN CONCAT(STUFF(CONVERT(nchar(19), CAST(t.[placed_at] AS datetime2(6)), 120), 11, 1, N'T'), N'.', RIGHT(CONCAT(N'00000', DATEPART(MICROSECOND, CAST(t.[placed_at] AS datetime2(6)))), 6)) END AS [placed_at],
                       CASE WHEN t.[updated_at] IS NOT NULL THEN CONCAT(STUFF(CONVERT(nchar(19), CAST(SWITCHOFFSET(t.[updated_at], N'+00:00') AS datetime2(6)), 120), 11, 1, N'T'), N'.', RIGHT(CONCAT(N'00000', DATEPART(MICROSECOND, CAST(SWITCHOFFSET(t.[updated_at], N'+00:00') AS datetime2(6)))), 6), N'Z') END AS [updated_at],
                       CONVERT(nchar(10), t.[ship_date], 23) AS [ship_date],
                       CASE WHEN t.[ship_time] IS NOT NULL THEN CASE WHEN DATEPART(MICROSECOND, t.[ship_time]) = 0 THEN CONVERT(nchar(8), t.[ship_time], 108) ELSE CONCAT(CONVERT(nchar(8), t.[ship_time], 108), N'.', REPLACE(RTRIM(REPLACE(RIGHT(CONCAT(N'00000', DATEPART(MICROSECOND, t.[ship_time])), 6), N'0', N' ')), N' ', N'0')) END END AS [ship_time],
                       LOWER(CONVERT(nchar(36), t.[ref])) AS [ref],
                       t.[blob] AS [blob],
                       CONVERT(nvarchar(30), t.[ratio], 3) AS [ratio],
                       t.[doc] AS [doc]
                   FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES)
          FROM [orders] AS t
         WHERE t.[region] = CAST(%(p1)s AS nvarchar(max)) AND t.[id] = CAST(%(p2)s AS bigint)) AS local_row,
       rv.ts AS version_ts,
       rv.origin AS version_origin,
       (SELECT MAX(o.created_at) FROM bridge_outbox AS o
         WHERE o.row_hash = HASHBYTES('SHA2_256', CONCAT(CAST(%(table)s AS nvarchar(max)), NCHAR(10), CAST(%(key)s AS nvarchar(max))))) AS pending_ts,
       CAST(%(id)s AS char(36)) AS event
  FROM (SELECT 1 AS one) AS one
  LEFT JOIN bridge_row_version AS rv
    ON rv.row_hash = HASHBYTES('SHA2_256', CONCAT(CAST(%(table)s AS nvarchar(max)), NCHAR(10), CAST(%(key)s AS nvarchar(max))));
GO

SET NOCOUNT ON;
DECLARE @bridge_fresh bit = 1, @bridge_present bit = 0;
SELECT @bridge_present = 1
  FROM [orders] AS t WITH (UPDLOCK, HOLDLOCK, ROWLOCK)
 WHERE t.[region] = CAST(%(p1)s AS nvarchar(max)) AND t.[id] = CAST(%(p2)s AS bigint);
SELECT @bridge_fresh AS fresh, @bridge_present AS present;
GO

SELECT (SELECT (SELECT t.[region] AS [region],
                       t.[id] AS [id],
                       t.[lines] AS [lines],
                       t.[Customer] AS [Customer],
                       t.[notes] AS [notes],
                       t.[code] AS [code],
                       CONVERT(nvarchar(50), t.[amount]) AS [amount],
                       t.[paid] AS [paid],
                       CASE WHEN t.[placed_at] IS NOT NULL THEN CONCAT(STUFF(CONVERT(nchar(19), CAST(t.[placed_at] AS datetime2(6)), 120), 11, 1, N'T'), N'.', RIGHT(CONCAT(N'00000', DATEPART(MICROSECOND, CAST(t.[placed_at] AS datetime2(6)))), 6)) END AS [placed_at],
                       CASE WHEN t.[updated_at] IS NOT NULL THEN CONCAT(STUFF(CONVERT(nchar(19), CAST(SWITCHOFFSET(t.[updated_at], N'+00:00') AS datetime2(6)), 120), 11, 1, N'T'), N'.', RIGHT(CONCAT(N'00000', DATEPART(MICROSECOND, CAST(SWITCHOFFSET(t.[updated_at], N'+00:00') AS datetime2(6)))), 6), N'Z') END AS [updated_at],
                       CONVERT(nchar(10), t.[ship_date], 23) AS [ship_date],
                       CASE WHEN t.[ship_time] IS NOT NULL THEN CASE WHEN DATEPART(MICROSECOND, t.[ship_time]) = 0 THEN CONVERT(nchar(8), t.[ship_time], 108) ELSE CONCAT(CONVERT(nchar(8), t.[ship_time], 108), N'.', REPLACE(RTRIM(REPLACE(RIGHT(CONCAT(N'00000', DATEPART(MICROSECOND, t.[ship_time])), 6), N'0', N' ')), N' ', N'0')) END END AS [ship_time],
                       LOWER(CONVERT(nchar(36), t.[ref])) AS [ref],
                       t.[blob] AS [blob],
                       CONVERT(nvarchar(30), t.[ratio], 3) AS [ratio],
                       t.[doc] AS [doc]
                   FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES)
          FROM [orders] AS t
         WHERE t.[region] = CAST(%(p1)s AS nvarchar(max)) AND t.[id] = CAST(%(p2)s AS bigint)) AS local_row,
       rv.ts AS version_ts,
       rv.origin AS version_origin,
       (SELECT MAX(o.created_at) FROM bridge_outbox AS o
         WHERE o.row_hash = HASHBYTES('SHA2_256', CONCAT(CAST(%(table)s AS nvarchar(max)), NCHAR(10), CAST(%(key)s AS nvarchar(max))))) AS pending_ts
  FROM (SELECT 1 AS one) AS one
  LEFT JOIN bridge_row_version AS rv
    ON rv.row_hash = HASHBYTES('SHA2_256', CONCAT(CAST(%(table)s AS nvarchar(max)), NCHAR(10), CAST(%(key)s AS nvarchar(max))));
GO

UPDATE [orders]
   SET [lines] = CAST(%(p3)s AS int),
       [Customer] = CAST(%(p4)s AS nvarchar(max)),
       [notes] = CAST(%(p5)s AS nvarchar(max)),
       [code] = CAST(%(p6)s AS varchar(max)),
       [amount] = CAST(CASE WHEN CHARINDEX(N'.', %(p7)s) > 0 AND LEN(REPLACE(RTRIM(REPLACE(SUBSTRING(%(p7)s, CHARINDEX(N'.', %(p7)s) + 1, 100), N'0', N' ')), N' ', N'0')) > 2 THEN CONVERT(nvarchar(max), CONVERT(int, CONCAT(N'bridge refuses ', %(p7)s, N' for column amount decimal(12,2): more decimal places than its scale'))) ELSE %(p7)s END AS decimal(12,2)),
       [paid] = CAST(%(p8)s AS bit),
       [placed_at] = CAST(CAST(%(p9)s AS datetime2(7)) AS datetime2(6)),
       [updated_at] = CAST(CAST(%(p10)s AS datetimeoffset(7)) AS datetimeoffset(7)),
       [ship_date] = CAST(%(p11)s AS date),
       [ship_time] = CAST(CAST(%(p12)s AS time(7)) AS time(7)),
       [ref] = CAST(%(p13)s AS uniqueidentifier),
       [blob] = CAST(%(p14)s AS varbinary(max)),
       [ratio] = CAST(%(p15)s AS float),
       [doc] = CAST(%(p16)s AS nvarchar(max))
 WHERE [region] = CAST(%(p1)s AS nvarchar(max)) AND [id] = CAST(%(p2)s AS bigint);
-- bridge:statement
MERGE INTO bridge_row_version WITH (HOLDLOCK) AS rv
USING (SELECT HASHBYTES('SHA2_256', CONCAT(CAST(%(table)s AS nvarchar(max)), NCHAR(10), CAST(%(key)s AS nvarchar(max)))) AS row_hash,
              CAST(%(table)s AS nvarchar(max)) AS table_name,
              CAST(%(key)s AS nvarchar(max)) AS row_key,
              CAST(%(ts)s AS datetime2(6)) AS ts,
              CAST(%(origin)s AS nvarchar(max)) AS origin,
              CAST(%(deleted)s AS bit) AS deleted,
              CAST(%(id)s AS char(36)) AS event_id) AS v
   ON rv.row_hash = v.row_hash
 WHEN MATCHED AND (rv.ts < v.ts OR (rv.ts = v.ts AND rv.origin < v.origin)) THEN
      UPDATE SET ts = v.ts, origin = v.origin, deleted = v.deleted, event_id = v.event_id
 WHEN NOT MATCHED THEN
      INSERT (row_hash, table_name, row_key, ts, origin, deleted, event_id)
      VALUES (v.row_hash, v.table_name, v.row_key, v.ts, v.origin, v.deleted, v.event_id);
GO

SET NOCOUNT ON;
INSERT INTO [orders] ([region], [id], [lines], [Customer], [notes], [code], [amount], [paid], [placed_at], [updated_at], [ship_date], [ship_time], [ref], [blob], [ratio], [doc])
VALUES (CAST(%(p1)s AS nvarchar(max)),
        CAST(%(p2)s AS bigint),
        CAST(%(p3)s AS int),
        CAST(%(p4)s AS nvarchar(max)),
        CAST(%(p5)s AS nvarchar(max)),
        CAST(%(p6)s AS varchar(max)),
        CAST(CASE WHEN CHARINDEX(N'.', %(p7)s) > 0 AND LEN(REPLACE(RTRIM(REPLACE(SUBSTRING(%(p7)s, CHARINDEX(N'.', %(p7)s) + 1, 100), N'0', N' ')), N' ', N'0')) > 2 THEN CONVERT(nvarchar(max), CONVERT(int, CONCAT(N'bridge refuses ', %(p7)s, N' for column amount decimal(12,2): more decimal places than its scale'))) ELSE %(p7)s END AS decimal(12,2)),
        CAST(%(p8)s AS bit),
        CAST(CAST(%(p9)s AS datetime2(7)) AS datetime2(6)),
        CAST(CAST(%(p10)s AS datetimeoffset(7)) AS datetimeoffset(7)),
        CAST(%(p11)s AS date),
        CAST(CAST(%(p12)s AS time(7)) AS time(7)),
        CAST(%(p13)s AS uniqueidentifier),
        CAST(%(p14)s AS varbinary(max)),
        CAST(%(p15)s AS float),
        CAST(%(p16)s AS nvarchar(max)));
SELECT CASE WHEN EXISTS (SELECT 1 FROM [orders] WHERE [region] = CAST(%(p1)s AS nvarchar(max)) AND [id] = CAST(%(p2)s AS bigint)) THEN 1 ELSE 0 END AS written;
GO

SET NOCOUNT ON;
DECLARE @bridge_ts datetime2(6) = CAST(%(decided_ts)s AS datetime2(6)),
        @bridge_origin nvarchar(max) = CAST(%(decided_origin)s AS nvarchar(max)),
        @bridge_pending datetime2(6) = CAST(%(decided_pending)s AS datetime2(6)),
        @bridge_unchanged bit = 0;
SELECT @bridge_unchanged = 1
  FROM (SELECT 1 AS one) AS one
  LEFT JOIN bridge_row_version AS rv ON rv.row_hash = HASHBYTES('SHA2_256', CONCAT(CAST(%(table)s AS nvarchar(max)), NCHAR(10), CAST(%(key)s AS nvarchar(max))))
 OUTER APPLY (SELECT MAX(o.created_at) AS ts FROM bridge_outbox AS o
               WHERE o.row_hash = HASHBYTES('SHA2_256', CONCAT(CAST(%(table)s AS nvarchar(max)), NCHAR(10), CAST(%(key)s AS nvarchar(max))))) AS pending
 WHERE (rv.ts = @bridge_ts OR (rv.ts IS NULL AND @bridge_ts IS NULL))
   AND (rv.origin = @bridge_origin OR (rv.origin IS NULL AND @bridge_origin IS NULL))
   AND (pending.ts = @bridge_pending OR (pending.ts IS NULL AND @bridge_pending IS NULL));
MERGE INTO bridge_row_version WITH (HOLDLOCK) AS rv
USING (SELECT HASHBYTES('SHA2_256', CONCAT(CAST(%(table)s AS nvarchar(max)), NCHAR(10), CAST(%(key)s AS nvarchar(max)))) AS row_hash,
              CAST(%(table)s AS nvarchar(max)) AS table_name,
              CAST(%(key)s AS nvarchar(max)) AS row_key,
              CAST(%(ts)s AS datetime2(6)) AS ts,
              CAST(%(origin)s AS nvarchar(max)) AS origin,
              CAST(%(deleted)s AS bit) AS deleted,
              CAST(%(id)s AS char(36)) AS event_id
        WHERE @bridge_unchanged = 1) AS v
   ON rv.row_hash = v.row_hash
 WHEN MATCHED AND (rv.ts < v.ts OR (rv.ts = v.ts AND rv.origin < v.origin)) THEN
      UPDATE SET ts = v.ts, origin = v.origin, deleted = v.deleted, event_id = v.event_id
 WHEN NOT MATCHED THEN
      INSERT (row_hash, table_name, row_key, ts, origin, deleted, event_id)
      VALUES (v.row_hash, v.table_name, v.row_key, v.ts, v.origin, v.deleted, v.event_id);
SELECT @bridge_unchanged AS unchanged;
GO

DELETE FROM [orders] WHERE [region] = CAST(%(p1)s AS nvarchar(max)) AND [id] = CAST(%(p2)s AS bigint);
-- bridge:statement
MERGE INTO bridge_row_version WITH (HOLDLOCK) AS rv
USING (SELECT HASHBYTES('SHA2_256', CONCAT(CAST(%(table)s AS nvarchar(max)), NCHAR(10), CAST(%(key)s AS nvarchar(max)))) AS row_hash,
              CAST(%(table)s AS nvarchar(max)) AS table_name,
              CAST(%(key)s AS nvarchar(max)) AS row_key,
              CAST(%(ts)s AS datetime2(6)) AS ts,
              CAST(%(origin)s AS nvarchar(max)) AS origin,
              CAST(%(deleted)s AS bit) AS deleted,
              CAST(%(id)s AS char(36)) AS event_id) AS v
   ON rv.row_hash = v.row_hash
 WHEN MATCHED AND (rv.ts < v.ts OR (rv.ts = v.ts AND rv.origin < v.origin)) THEN
      UPDATE SET ts = v.ts, origin = v.origin, deleted = v.deleted, event_id = v.event_id
 WHEN NOT MATCHED THEN
      INSERT (row_hash, table_name, row_key, ts, origin, deleted, event_id)
      VALUES (v.row_hash, v.table_name, v.row_key, v.ts, v.origin, v.deleted, v.event_id);
GO

MERGE INTO bridge_row_version WITH (HOLDLOCK) AS rv
USING (SELECT HASHBYTES('SHA2_256', CONCAT(CAST(%(table)s AS nvarchar(max)), NCHAR(10), CAST(%(key)s AS nvarchar(max)))) AS row_hash,
              CAST(%(table)s AS nvarchar(max)) AS table_name,
              CAST(%(key)s AS nvarchar(max)) AS row_key,
              CAST(%(ts)s AS datetime2(6)) AS ts,
              CAST(%(origin)s AS nvarchar(max)) AS origin,
              CAST(%(deleted)s AS bit) AS deleted,
              CAST(%(id)s AS char(36)) AS event_id) AS v
   ON rv.row_hash = v.row_hash
 WHEN MATCHED AND (rv.ts < v.ts OR (rv.ts = v.ts AND rv.origin < v.origin)) THEN
      UPDATE SET ts = v.ts, origin = v.origin, deleted = v.deleted, event_id = v.event_id
 WHEN NOT MATCHED THEN
      INSERT (row_hash, table_name, row_key, ts, origin, deleted, event_id)
      VALUES (v.row_hash, v.table_name, v.row_key, v.ts, v.origin, v.deleted, v.event_id);
GO

DELETE FROM [orders] WHERE [region] = CAST(%(p1)s AS nvarchar(max)) AND [id] = CAST(%(p2)s AS bigint);
GO

UPDATE [orders]
   SET [lines] = CAST(%(p3)s AS int),
       [Customer] = CAST(%(p4)s AS nvarchar(max)),
       [notes] = DEFAULT,
       [code] = CAST(%(p6)s AS varchar(max)),
       [amount] = CAST(CASE WHEN CHARINDEX(N'.', %(p7)s) > 0 AND LEN(REPLACE(RTRIM(REPLACE(SUBSTRING(%(p7)s, CHARINDEX(N'.', %(p7)s) + 1, 100), N'0', N' ')), N' ', N'0')) > 2 THEN CONVERT(nvarchar(max), CONVERT(int, CONCAT(N'bridge refuses ', %(p7)s, N' for column amount decimal(12,2): more decimal places than its scale'))) ELSE %(p7)s END AS decimal(12,2)),
       [paid] = CAST(%(p8)s AS bit),
       [placed_at] = CAST(CAST(%(p9)s AS datetime2(7)) AS datetime2(6)),
       [updated_at] = CAST(CAST(%(p10)s AS datetimeoffset(7)) AS datetimeoffset(7)),
       [ship_date] = CAST(%(p11)s AS date),
       [ship_time] = CAST(CAST(%(p12)s AS time(7)) AS time(7)),
       [ref] = CAST(%(p13)s AS uniqueidentifier),
       [blob] = CAST(%(p14)s AS varbinary(max)),
       [ratio] = CAST(%(p15)s AS float),
       [doc] = CAST(%(p16)s AS nvarchar(max))
 WHERE [region] = CAST(%(p1)s AS nvarchar(max)) AND [id] = CAST(%(p2)s AS bigint);
-- bridge:statement
MERGE INTO bridge_row_version WITH (HOLDLOCK) AS rv
USING (SELECT HASHBYTES('SHA2_256', CONCAT(CAST(%(table)s AS nvarchar(max)), NCHAR(10), CAST(%(key)s AS nvarchar(max)))) AS row_hash,
              CAST(%(table)s AS nvarchar(max)) AS table_name,
              CAST(%(key)s AS nvarchar(max)) AS row_key,
              CAST(%(ts)s AS datetime2(6)) AS ts,
              CAST(%(origin)s AS nvarchar(max)) AS origin,
              CAST(%(deleted)s AS bit) AS deleted,
              CAST(%(id)s AS char(36)) AS event_id) AS v
   ON rv.row_hash = v.row_hash
 WHEN MATCHED AND (rv.ts < v.ts OR (rv.ts = v.ts AND rv.origin < v.origin)) THEN
      UPDATE SET ts = v.ts, origin = v.origin, deleted = v.deleted, event_id = v.event_id
 WHEN NOT MATCHED THEN
      INSERT (row_hash, table_name, row_key, ts, origin, deleted, event_id)
      VALUES (v.row_hash, v.table_name, v.row_key, v.ts, v.origin, v.deleted, v.event_id);
GO

SET NOCOUNT ON;
INSERT INTO [orders] ([region], [id], [lines], [Customer], [code], [amount], [paid], [placed_at], [updated_at], [ship_date], [ship_time], [ref], [blob], [ratio], [doc])
VALUES (CAST(%(p1)s AS nvarchar(max)),
        CAST(%(p2)s AS bigint),
        CAST(%(p3)s AS int),
        CAST(%(p4)s AS nvarchar(max)),
        CAST(%(p6)s AS varchar(max)),
        CAST(CASE WHEN CHARINDEX(N'.', %(p7)s) > 0 AND LEN(REPLACE(RTRIM(REPLACE(SUBSTRING(%(p7)s, CHARINDEX(N'.', %(p7)s) + 1, 100), N'0', N' ')), N' ', N'0')) > 2 THEN CONVERT(nvarchar(max), CONVERT(int, CONCAT(N'bridge refuses ', %(p7)s, N' for column amount decimal(12,2): more decimal places than its scale'))) ELSE %(p7)s END AS decimal(12,2)),
        CAST(%(p8)s AS bit),
        CAST(CAST(%(p9)s AS datetime2(7)) AS datetime2(6)),
        CAST(CAST(%(p10)s AS datetimeoffset(7)) AS datetimeoffset(7)),
        CAST(%(p11)s AS date),
        CAST(CAST(%(p12)s AS time(7)) AS time(7)),
        CAST(%(p13)s AS uniqueidentifier),
        CAST(%(p14)s AS varbinary(max)),
        CAST(%(p15)s AS float),
        CAST(%(p16)s AS nvarchar(max)));
SELECT CASE WHEN EXISTS (SELECT 1 FROM [orders] WHERE [region] = CAST(%(p1)s AS nvarchar(max)) AND [id] = CAST(%(p2)s AS bigint)) THEN 1 ELSE 0 END AS written;
GO

SET NOCOUNT ON;
DECLARE @bridge_theirs datetime2(6) = CAST(CAST(%(theirs)s AS datetime2(7)) AS datetime2(6)),
        @bridge_mine datetime2(6) = CAST(CAST(%(mine)s AS datetime2(7)) AS datetime2(6));
SELECT CASE WHEN @bridge_theirs <= @bridge_mine THEN CAST(1 AS bit)
            WHEN @bridge_theirs > @bridge_mine THEN CAST(0 AS bit) END AS not_newer;
GO

SELECT t.[region] AS [region],
       t.[id] AS [id],
       t.[lines] AS [lines],
       t.[Customer] AS [Customer],
       t.[notes] AS [notes],
       t.[code] AS [code],
       CONVERT(nvarchar(50), t.[amount]) AS [amount],
       t.[paid] AS [paid],
       CASE WHEN t.[placed_at] IS NOT NULL THEN CONCAT(STUFF(CONVERT(nchar(19), CAST(t.[placed_at] AS datetime2(6)), 120), 11, 1, N'T'), N'.', RIGHT(CONCAT(N'00000', DATEPART(MICROSECOND, CAST(t.[placed_at] AS datetime2(6)))), 6)) END AS [placed_at],
       CASE WHEN t.[updated_at] IS NOT NULL THEN CONCAT(STUFF(CONVERT(nchar(19), CAST(SWITCHOFFSET(t.[updated_at], N'+00:00') AS datetime2(6)), 120), 11, 1, N'T'), N'.', RIGHT(CONCAT(N'00000', DATEPART(MICROSECOND, CAST(SWITCHOFFSET(t.[updated_at], N'+00:00') AS datetime2(6)))), 6), N'Z') END AS [updated_at],
       CONVERT(nchar(10), t.[ship_date], 23) AS [ship_date],
       CASE WHEN t.[ship_time] IS NOT NULL THEN CASE WHEN DATEPART(MICROSECOND, t.[ship_time]) = 0 THEN CONVERT(nchar(8), t.[ship_time], 108) ELSE CONCAT(CONVERT(nchar(8), t.[ship_time], 108), N'.', REPLACE(RTRIM(REPLACE(RIGHT(CONCAT(N'00000', DATEPART(MICROSECOND, t.[ship_time])), 6), N'0', N' ')), N' ', N'0')) END END AS [ship_time],
       LOWER(CONVERT(nchar(36), t.[ref])) AS [ref],
       t.[blob] AS [blob],
       CONVERT(nvarchar(30), t.[ratio], 3) AS [ratio],
       t.[doc] AS [doc]
  FROM [orders] AS t;
GO
