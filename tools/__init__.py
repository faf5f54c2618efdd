"""Host-side tools: simulator CLI, trace plotting, summaries (CPython only, never flashed)."""
