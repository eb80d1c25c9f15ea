"""Example trainers and data shipped with jfhpo (``jfhpo init`` studies point at them)."""
