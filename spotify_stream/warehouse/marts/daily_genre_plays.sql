-- Plays of each day by genre: a play counts for every genre of its track's artist.
-- source: plays
WITH tracks AS (
    SELECT track_id, max_by(genres, artist_updated_at) AS genres
    FROM tracks_enriched
    GROUP BY track_id
)
SELECT p.dt, g.genre, count(*) AS plays
FROM plays AS p
JOIN tracks AS t ON t.track_id = p.track_id
CROSS JOIN UNNEST(t.genres) AS g(genre)
WHERE p.dt IN (SELECT dt FROM days)
GROUP BY p.dt, g.genre
