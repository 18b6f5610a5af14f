"""Membership (会员体系): programme, tiers and benefits, the points ledger, member summaries."""
