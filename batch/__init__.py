"""The batch process: the nightly aggregation scheduler, and the history generator for volume tests."""
