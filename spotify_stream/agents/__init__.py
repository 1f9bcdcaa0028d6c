"""Faust agents' work: each module holds the logic one agent in ``app.py`` runs."""
