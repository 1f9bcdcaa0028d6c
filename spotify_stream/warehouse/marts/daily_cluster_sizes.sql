-- Tracks per cluster of the newest model version published each day.
-- source: clusters
SELECT c.dt, c.model_version, c.cluster_id, c.size
FROM clusters AS c
WHERE c.dt IN (SELECT dt FROM days)
  AND c.model_version = (SELECT max(m.model_version) FROM clusters AS m WHERE m.dt = c.dt)
