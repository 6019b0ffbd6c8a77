"""The app's views: alerts (+ detail), models, overview, sync."""
