"""Customer profiles, identities, identity resolution and merges, rollups, timeline."""
