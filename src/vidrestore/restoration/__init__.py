"""Restoration stages (pipeline stages a user runs with `vidrestore restore -s NAME`).

Classical baselines live here: `identity`, `unsharp` (unsharp mask) and `lucky` (lucky-frame
fusion). Each module registers its stages; `vidrestore.pipeline.builtin` imports them.
"""
