"""The rewrite passes, one concern per module; pipeline.py runs them in order over one file."""
