"""Batch narration: a script in, one audio file per segment and a manifest out."""

from .script import ScriptError, ScriptKind, Segment, make_segments, parse_script, read_script

__all__ = ["ScriptError", "ScriptKind", "Segment", "make_segments", "parse_script", "read_script"]
