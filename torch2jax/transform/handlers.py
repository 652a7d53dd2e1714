"""Named handlers for the torch APIs that a table template cannot express.

A handler gets the pass, the record, the bound arguments and the call node, and returns the replacement
expression, or None to fall back to the record's templates.
"""
from __future__ import annotations
