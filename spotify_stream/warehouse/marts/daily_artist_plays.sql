-- Plays of each day by the primary artist of each played track (latest version of each track).
-- source: plays
WITH played AS (  -- per day and track first: the join then has far fewer rows
    SELECT dt, track_id, count(*) AS plays,
           sum(CASE WHEN skipped THEN 1 ELSE 0 END) AS skips, sum(ms_played) AS ms_played
    FROM plays
    WHERE dt IN (SELECT dt FROM days)
    GROUP BY dt, track_id
),
tracks AS (
    SELECT track_id, max_by(artist_id, updated_at) AS artist_id,
           max_by(artist_name, artist_updated_at) AS artist_name
    FROM tracks_enriched
    WHERE track_id IN (SELECT track_id FROM played)
    GROUP BY track_id
)
SELECT p.dt, t.artist_id, max(t.artist_name) AS artist_name,
       CAST(sum(p.plays) AS BIGINT) AS plays, CAST(sum(p.skips) AS BIGINT) AS skips,
       CAST(sum(p.ms_played) AS BIGINT) AS ms_played
FROM played AS p
JOIN tracks AS t ON t.track_id = p.track_id
WHERE t.artist_id IS NOT NULL
GROUP BY p.dt, t.artist_id
