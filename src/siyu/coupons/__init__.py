"""Coupons (优惠券): templates, issuance with unguessable codes, atomic redemption, expiry and stats."""
