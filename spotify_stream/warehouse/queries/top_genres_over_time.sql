-- The n most played genres of each day (a play counts for every genre of its track's artist).
-- param: n = 5
WITH ranked AS (
    SELECT CAST(dt AS DATE) AS day, genre, plays,
           row_number() OVER (PARTITION BY dt ORDER BY plays DESC, genre) AS rank
    FROM daily_genre_plays
)
SELECT day, rank, genre, plays
FROM ranked
WHERE rank <= :n
ORDER BY day, rank
