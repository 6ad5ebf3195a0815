"""Every size, count and rate the bridge accepts, in one place (BRIDGE-SECURITY 6, 7)."""

from eidcore import fields

MAX_BODY_BYTES = 256 * 1024  # fits the two data limits below with room for the rest
MAX_ORIGIN_LENGTH = 255
NONCE_MIN_BYTES = 32
NONCE_MAX_BYTES = 96
MAX_USER_VISIBLE_DATA = fields.MAX_USER_VISIBLE_DATA  # as the relay's (eidcore/fields.py)
MAX_USER_NON_VISIBLE_DATA = fields.MAX_USER_NON_VISIBLE_DATA
MAX_JSON_DEPTH = 3  # {"tokenKinds": ["file"]} is depth 2
MAX_ORDER_REF_LENGTH = 64

# Rate limits: token buckets (capacity, refill per second).
START_BUCKET_PER_ORIGIN = (5.0, 0.5)  # 5 at once, then one every 2 s
START_BUCKET_GLOBAL = (20.0, 2.0)  # many origins together cannot exceed this
POLL_BUCKET_PER_ORIGIN = (20.0, 10.0)  # collect/cancel/info: a page polls every 1-2 s
MAX_TRACKED_ORIGINS = 1024  # the per-origin buckets are bounded too
