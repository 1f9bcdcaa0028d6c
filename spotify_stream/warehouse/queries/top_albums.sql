-- The most popular albums released in the 5 years before as_of (latest version of each album).
-- param: as_of = current_date
-- param: n = 10
WITH latest AS (
    SELECT album_id, max_by(name, updated_at) AS name, max_by(album_type, updated_at) AS album_type,
           max_by(release_date, updated_at) AS release_date, max_by(popularity, updated_at) AS popularity,
           max_by(artist_id, updated_at) AS artist_id
    FROM albums
    GROUP BY album_id
)
SELECT album_id, name, album_type, release_date, popularity, artist_id
FROM latest
WHERE release_date > date_add('year', -5, CAST(:as_of AS DATE))
  AND release_date <= CAST(:as_of AS DATE)
  AND popularity IS NOT NULL
ORDER BY popularity DESC, name, album_id
LIMIT :n
