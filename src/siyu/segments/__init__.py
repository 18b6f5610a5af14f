"""Segments (分群) and customer layering (分层): dynamic and static segments, refresh, RFM, lifecycle."""
