"""The dashboards: chart definitions, their data from the lake, the static report."""
