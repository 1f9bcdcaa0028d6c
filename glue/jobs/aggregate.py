"""Glue job: `spotify-stream etl aggregate` for one day (default: yesterday, UTC).

Glue 5.0 (Python 3.11); the package comes from --additional-python-modules.
Job arguments: --date YYYY-MM-DD (optional), and any setting as
--SPOTIFY_STREAM_<NAME> VALUE (the job definition sets --SPOTIFY_STREAM_LAKE).
"""

from spotify_stream.glue_entry import glue_main

glue_main("aggregate")
