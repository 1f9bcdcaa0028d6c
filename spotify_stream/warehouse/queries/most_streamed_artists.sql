-- Artists by plays (the primary artist of each played track), with distinct listeners and skip rate.
-- param: n = 10
WITH tracks AS (
    SELECT track_id, max_by(artist_id, updated_at) AS artist_id,
           max_by(artist_name, artist_updated_at) AS artist_name
    FROM tracks_enriched
    GROUP BY track_id
)
SELECT t.artist_id, max(t.artist_name) AS artist_name, count(*) AS plays,
       count(DISTINCT p.user_id) AS listeners,
       round(avg(CASE WHEN p.skipped THEN 1.0 ELSE 0.0 END), 4) AS skip_rate
FROM plays AS p
JOIN tracks AS t ON t.track_id = p.track_id
WHERE t.artist_id IS NOT NULL
GROUP BY t.artist_id
ORDER BY plays DESC, t.artist_id
LIMIT :n
