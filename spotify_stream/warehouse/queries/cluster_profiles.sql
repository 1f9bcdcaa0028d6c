-- Each cluster of the newest model version: size, feature means, top genres and tracks.
SELECT model_version, cluster_id, size, danceability, energy, loudness, speechiness,
       acousticness, instrumentalness, liveness, valence, tempo, top_genres, top_track_names
FROM clusters
WHERE model_version = (SELECT max(model_version) FROM clusters)
ORDER BY cluster_id
