-- Plays of each day by genre: a play counts for every genre of its track's artist.
-- source: plays
WITH played AS (  -- per day and track first: the join then has far fewer rows
    SELECT dt, track_id, count(*) AS plays
    FROM plays
    WHERE dt IN (SELECT dt FROM days)
    GROUP BY dt, track_id
),
tracks AS (
    SELECT track_id, max_by(genres, artist_updated_at) AS genres
    FROM tracks_enriched
    WHERE track_id IN (SELECT track_id FROM played)
    GROUP BY track_id
)
SELECT p.dt, g.genre, CAST(sum(p.plays) AS BIGINT) AS plays
FROM played AS p
JOIN tracks AS t ON t.track_id = p.track_id
CROSS JOIN UNNEST(t.genres) AS g(genre)
GROUP BY p.dt, g.genre
