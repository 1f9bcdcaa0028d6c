-- Plays of each day by album (latest version of each played track).
-- source: plays
WITH tracks AS (
    SELECT track_id, max_by(album_id, updated_at) AS album_id,
           max_by(album_name, album_updated_at) AS album_name,
           max_by(artist_id, updated_at) AS artist_id
    FROM tracks_enriched
    GROUP BY track_id
)
SELECT p.dt, t.album_id, max(t.album_name) AS album_name, max(t.artist_id) AS artist_id,
       count(*) AS plays, CAST(sum(p.ms_played) AS BIGINT) AS ms_played
FROM plays AS p
JOIN tracks AS t ON t.track_id = p.track_id
WHERE p.dt IN (SELECT dt FROM days) AND t.album_id IS NOT NULL
GROUP BY p.dt, t.album_id
