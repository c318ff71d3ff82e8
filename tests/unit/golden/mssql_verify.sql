SELECT COUNT_BIG(*) FROM [orders];
GO

SELECT b.[region] AS [region], b.[id] AS [id]
  FROM (SELECT t.[region], t.[id], ROW_NUMBER() OVER (ORDER BY t.[region], t.[id]) AS bridge_n
          FROM [orders] AS t) AS b
 WHERE (b.bridge_n / %(every)s) * %(every)s = b.bridge_n
 ORDER BY b.bridge_n;
GO

SELECT COUNT_BIG(*), SUM(CAST(c.h AS decimal(38, 0)))
  FROM (SELECT CAST(SUBSTRING(HASHBYTES('MD5', (SELECT t.[region] AS [region], t.[id] AS [id], t.[lines] AS [lines], t.[Customer] AS [Customer], t.[notes] AS [notes], t.[code] AS [code], CONVERT(nvarchar(50), t.[amount]) AS [amount], t.[paid] AS [paid], CASE WHEN t.[placed_at] IS NOT NULL THEN CONCAT(STUFF(CONVERT(nchar(19), CAST(t.[placed_at] AS datetime2(6)), 120), 11, 1, N'T'), N'.', RIGHT(CONCAT(N'00000', DATEPART(MICROSECOND, CAST(t.[placed_at] AS datetime2(6)))), 6)) END AS [placed_at], CASE WHEN t.[updated_at] IS NOT NULL THEN CONCAT(STUFF(CONVERT(nchar(19), CAST(SWITCHOFFSET(t.[updated_at], N'+00:00') AS datetime2(6)), 120), 11, 1, N'T'), N'.', RIGHT(CONCAT(N'00000', DATEPART(MICROSECOND, CAST(SWITCHOFFSET(t.[updated_at], N'+00:00') AS datetime2(6)))), 6), N'Z') END AS [updated_at], CONVERT(nchar(10), t.[ship_date], 23) AS [ship_date], CASE WHEN t.[ship_time] IS NOT NULL THEN CASE WHEN DATEPART(MICROSECOND, t.[ship_time]) = 0 THEN CONVERT(nchar(8), t.[ship_time], 108) ELSE CONCAT(CONVERT(nchar(8), t.[ship_time], 108), N'.', REPLACE(RTRIM(REPLACE(RIGHT(CONCAT(N'00000', DATEPART(MICROSECOND, t.[ship_time])), 6), N'0', N' ')), N' ', N'0')) END END AS [ship_time], LOWER(CONVERT(nchar(36), t.[ref])) AS [ref], t.[blob] AS [blob], CONVERT(nvarchar(30), t.[ratio], 3) AS [ratio], t.[doc] AS [doc] FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES)), 1, 8) AS bigint) AS h FROM [orders] AS t) AS c;
GO

SELECT b.[region] AS [region], b.[id] AS [id]
  FROM (SELECT t.[region], t.[id], ROW_NUMBER() OVER (ORDER BY t.[region], t.[id]) AS bridge_n
          FROM [orders] AS t WHERE (t.[region] > CAST(%(lo0)s AS nvarchar(max)) OR (t.[region] = CAST(%(lo0)s AS nvarchar(max)) AND t.[id] > CAST(%(lo1)s AS bigint))) AND (t.[region] < CAST(%(hi0)s AS nvarchar(max)) OR (t.[region] = CAST(%(hi0)s AS nvarchar(max)) AND t.[id] <= CAST(%(hi1)s AS bigint)))) AS b
 WHERE (b.bridge_n / %(every)s) * %(every)s = b.bridge_n
 ORDER BY b.bridge_n;
GO

SELECT COUNT_BIG(*), SUM(CAST(c.h AS decimal(38, 0)))
  FROM (SELECT CAST(SUBSTRING(HASHBYTES('MD5', (SELECT t.[region] AS [region], t.[id] AS [id], t.[lines] AS [lines], t.[Customer] AS [Customer], t.[notes] AS [notes], t.[code] AS [code], CONVERT(nvarchar(50), t.[amount]) AS [amount], t.[paid] AS [paid], CASE WHEN t.[placed_at] IS NOT NULL THEN CONCAT(STUFF(CONVERT(nchar(19), CAST(t.[placed_at] AS datetime2(6)), 120), 11, 1, N'T'), N'.', RIGHT(CONCAT(N'00000', DATEPART(MICROSECOND, CAST(t.[placed_at] AS datetime2(6)))), 6)) END AS [placed_at], CASE WHEN t.[updated_at] IS NOT NULL THEN CONCAT(STUFF(CONVERT(nchar(19), CAST(SWITCHOFFSET(t.[updated_at], N'+00:00') AS datetime2(6)), 120), 11, 1, N'T'), N'.', RIGHT(CONCAT(N'00000', DATEPART(MICROSECOND, CAST(SWITCHOFFSET(t.[updated_at], N'+00:00') AS datetime2(6)))), 6), N'Z') END AS [updated_at], CONVERT(nchar(10), t.[ship_date], 23) AS [ship_date], CASE WHEN t.[ship_time] IS NOT NULL THEN CASE WHEN DATEPART(MICROSECOND, t.[ship_time]) = 0 THEN CONVERT(nchar(8), t.[ship_time], 108) ELSE CONCAT(CONVERT(nchar(8), t.[ship_time], 108), N'.', REPLACE(RTRIM(REPLACE(RIGHT(CONCAT(N'00000', DATEPART(MICROSECOND, t.[ship_time])), 6), N'0', N' ')), N' ', N'0')) END END AS [ship_time], LOWER(CONVERT(nchar(36), t.[ref])) AS [ref], t.[blob] AS [blob], CONVERT(nvarchar(30), t.[ratio], 3) AS [ratio], t.[doc] AS [doc] FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES)), 1, 8) AS bigint) AS h FROM [orders] AS t WHERE (t.[region] > CAST(%(lo0)s AS nvarchar(max)) OR (t.[region] = CAST(%(lo0)s AS nvarchar(max)) AND t.[id] > CAST(%(lo1)s AS bigint))) AND (t.[region] < CAST(%(hi0)s AS nvarchar(max)) OR (t.[region] = CAST(%(hi0)s AS nvarchar(max)) AND t.[id] <= CAST(%(hi1)s AS bigint)))) AS c;
GO

SELECT t.[region] AS [region], t.[id] AS [id], CAST(SUBSTRING(HASHBYTES('MD5', (SELECT t.[region] AS [region], t.[id] AS [id], t.[lines] AS [lines], t.[Customer] AS [Customer], t.[notes] AS [notes], t.[code] AS [code], CONVERT(nvarchar(50), t.[amount]) AS [amount], t.[paid] AS [paid], CASE WHEN t.[placed_at] IS NOT NULL THEN CONCAT(STUFF(CONVERT(nchar(19), CAST(t.[placed_at] AS datetime2(6)), 120), 11, 1, N'T'), N'.', RIGHT(CONCAT(N'00000', DATEPART(MICROSECOND, CAST(t.[placed_at] AS datetime2(6)))), 6)) END AS [placed_at], CASE WHEN t.[updated_at] IS NOT NULL THEN CONCAT(STUFF(CONVERT(nchar(19), CAST(SWITCHOFFSET(t.[updated_at], N'+00:00') AS datetime2(6)), 120), 11, 1, N'T'), N'.', RIGHT(CONCAT(N'00000', DATEPART(MICROSECOND, CAST(SWITCHOFFSET(t.[updated_at], N'+00:00') AS datetime2(6)))), 6), N'Z') END AS [updated_at], CONVERT(nchar(10), t.[ship_date], 23) AS [ship_date], CASE WHEN t.[ship_time] IS NOT NULL THEN CASE WHEN DATEPART(MICROSECOND, t.[ship_time]) = 0 THEN CONVERT(nchar(8), t.[ship_time], 108) ELSE CONCAT(CONVERT(nchar(8), t.[ship_time], 108), N'.', REPLACE(RTRIM(REPLACE(RIGHT(CONCAT(N'00000', DATEPART(MICROSECOND, t.[ship_time])), 6), N'0', N' ')), N' ', N'0')) END END AS [ship_time], LOWER(CONVERT(nchar(36), t.[ref])) AS [ref], t.[blob] AS [blob], CONVERT(nvarchar(30), t.[ratio], 3) AS [ratio], t.[doc] AS [doc] FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES)), 1, 8) AS bigint) AS bridge_hash
  FROM [orders] AS t WHERE (t.[region] > CAST(%(lo0)s AS nvarchar(max)) OR (t.[region] = CAST(%(lo0)s AS nvarchar(max)) AND t.[id] > CAST(%(lo1)s AS bigint))) AND (t.[region] < CAST(%(hi0)s AS nvarchar(max)) OR (t.[region] = CAST(%(hi0)s AS nvarchar(max)) AND t.[id] <= CAST(%(hi1)s AS bigint)))
 ORDER BY t.[region], t.[id];
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
  FROM [orders] AS t WHERE (t.[region] > CAST(%(lo0)s AS nvarchar(max)) OR (t.[region] = CAST(%(lo0)s AS nvarchar(max)) AND t.[id] > CAST(%(lo1)s AS bigint))) AND (t.[region] < CAST(%(hi0)s AS nvarchar(max)) OR (t.[region] = CAST(%(hi0)s AS nvarchar(max)) AND t.[id] <= CAST(%(hi1)s AS bigint)))
 ORDER BY t.[region], t.[id];
GO
