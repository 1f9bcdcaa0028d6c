"""spotify-stream: a real-time pipeline for Spotify catalog and listening data."""

__version__ = "0.1.0"
