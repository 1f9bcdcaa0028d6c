"""Worker state: Faust tables written in bulk, the broadcast dimension store, windows."""
