"""The nightly aggregation job and its scheduler (campaign_stats); not part of this release yet."""
