"""Worker state of our own: the dimension store, popularity windows and their clocks,
the leaderboard, the listener sketch. (Faust tables and the broadcast reader: ``faust_ext``.)"""
