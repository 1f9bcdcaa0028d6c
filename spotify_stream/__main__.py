from spotify_stream.cli import main

main()
