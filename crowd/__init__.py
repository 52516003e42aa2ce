"""The crowd simulator: a storm of simulated users through the real participation door, on demand.

`python -m crowd --campaign ID --users N --seconds T` (or the Control page, through the admin API)
sends N users' clicks, plus a share of repeat clicks, spread over T seconds as an open-loop schedule,
to `POST /api/campaigns/{id}/participation` (the synchronous door for a SYNC campaign), and reports
what it measured — every answer counted by status and error code, latency percentiles, how far it
fell behind its schedule — in the database once a second, where the dashboard reads it while it
runs. Bounded in count and time, stoppable at any moment, loopback only unless allowed otherwise.
"""
