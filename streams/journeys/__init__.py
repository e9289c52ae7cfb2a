"""Journeys across channels: follow-up triggers (S7), action-to-response attribution (S5, S2), channel typology
(S6) and store stock for click and collect (S3). See docs/journeys.md.

The rules are pure (``streams.domain.journey``, ``attribution``, ``typology``, ``stock``); this package holds
the shells: :mod:`~streams.journeys.processing` (called by the state stage), :mod:`~streams.journeys.timer`
(the wall-clock timer), :mod:`~streams.journeys.store` (Redis). Importing it starts nothing.
"""
