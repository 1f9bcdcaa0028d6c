-- What did not make it clean: dead letters by reason, and enriched tracks (latest version of each) by the part their join still misses (none: complete).
WITH latest AS (
    SELECT track_id, max_by(missing, greatest(
               coalesce(updated_at, TIMESTAMP '1970-01-01 00:00:00'),
               coalesce(album_updated_at, TIMESTAMP '1970-01-01 00:00:00'),
               coalesce(artist_updated_at, TIMESTAMP '1970-01-01 00:00:00'),
               coalesce(features_updated_at, TIMESTAMP '1970-01-01 00:00:00'))) AS missing
    FROM tracks_enriched
    GROUP BY track_id
),
parts AS (
    SELECT coalesce(m.part, 'none') AS missing, l.track_id
    FROM latest AS l
    LEFT JOIN UNNEST(l.missing) AS m(part) ON TRUE
)
SELECT 'dead letters' AS "check", reason AS value, count(*) AS count
FROM deadletters
GROUP BY reason
UNION ALL
SELECT 'tracks missing' AS "check", missing AS value, count(DISTINCT track_id) AS count
FROM parts
GROUP BY missing
ORDER BY 1, 2
