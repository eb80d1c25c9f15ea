"""Reports of a study: text status tables and JSON summaries."""
