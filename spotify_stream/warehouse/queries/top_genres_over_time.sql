-- The n most played genres of each day (a play counts for every genre of its track's artist).
-- param: n = 5
WITH tracks AS (
    SELECT track_id, max_by(genres, artist_updated_at) AS genres
    FROM tracks_enriched
    GROUP BY track_id
),
daily AS (
    SELECT CAST(date_trunc('day', p.played_at) AS DATE) AS day, g.genre, count(*) AS plays
    FROM plays AS p
    JOIN tracks AS t ON t.track_id = p.track_id
    CROSS JOIN UNNEST(t.genres) AS g(genre)
    GROUP BY 1, 2
),
ranked AS (
    SELECT day, genre, plays,
           row_number() OVER (PARTITION BY day ORDER BY plays DESC, genre) AS rank
    FROM daily
)
SELECT day, rank, genre, plays
FROM ranked
WHERE rank <= :n
ORDER BY day, rank
