"""Data files shipped with jfhpo."""
