-- One artist's closed popularity windows in time order, with a rolling mean of plays over 3 windows.
-- param: artist_id
-- param: window = 1h
SELECT window_start, window_end, plays, unique_listeners, skip_rate,
       avg(plays) OVER (ORDER BY window_start ROWS BETWEEN 2 PRECEDING AND CURRENT ROW)
           AS plays_rolling_3
FROM popularity
WHERE entity_type = 'artist' AND entity_id = :artist_id AND "window" = :window
ORDER BY window_start
