"""Workspaces (one brand each), console users, API keys."""
