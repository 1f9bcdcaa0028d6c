-- Plays of each day by album (latest version of each played track).
-- source: plays
WITH played AS (  -- per day and track first: the join then has far fewer rows
    SELECT dt, track_id, count(*) AS plays, sum(ms_played) AS ms_played
    FROM plays
    WHERE dt IN (SELECT dt FROM days)
    GROUP BY dt, track_id
),
tracks AS (
    SELECT track_id, max_by(album_id, updated_at) AS album_id,
           max_by(album_name, album_updated_at) AS album_name,
           max_by(artist_id, updated_at) AS artist_id
    FROM tracks_enriched
    WHERE track_id IN (SELECT track_id FROM played)
    GROUP BY track_id
)
SELECT p.dt, t.album_id, max(t.album_name) AS album_name, max(t.artist_id) AS artist_id,
       CAST(sum(p.plays) AS BIGINT) AS plays, CAST(sum(p.ms_played) AS BIGINT) AS ms_played
FROM played AS p
JOIN tracks AS t ON t.track_id = p.track_id
WHERE t.album_id IS NOT NULL
GROUP BY p.dt, t.album_id
