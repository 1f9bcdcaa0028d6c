-- Artists by plays (the primary artist of each played track), with hours played and skip rate.
-- param: n = 10
SELECT artist_id, max(artist_name) AS artist_name, CAST(sum(plays) AS BIGINT) AS plays,
       round(sum(ms_played) / 3600000.0, 2) AS hours_played,
       round(CAST(sum(skips) AS DOUBLE) / sum(plays), 4) AS skip_rate
FROM daily_artist_plays
GROUP BY artist_id
ORDER BY plays DESC, artist_id
LIMIT :n
