"""Faust web views: monitoring (/pipeline/stats, /metrics) and lookups."""
