-- Plays of each day by the primary artist of each played track (latest version of each track).
-- source: plays
WITH tracks AS (
    SELECT track_id, max_by(artist_id, updated_at) AS artist_id,
           max_by(artist_name, artist_updated_at) AS artist_name
    FROM tracks_enriched
    GROUP BY track_id
)
SELECT p.dt, t.artist_id, max(t.artist_name) AS artist_name, count(*) AS plays,
       CAST(sum(CASE WHEN p.skipped THEN 1 ELSE 0 END) AS BIGINT) AS skips,
       CAST(sum(p.ms_played) AS BIGINT) AS ms_played
FROM plays AS p
JOIN tracks AS t ON t.track_id = p.track_id
WHERE p.dt IN (SELECT dt FROM days) AND t.artist_id IS NOT NULL
GROUP BY p.dt, t.artist_id
