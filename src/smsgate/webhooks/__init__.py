"""Webhooks: ``planner`` turns events into durable deliveries in the event's own transaction, ``formats`` builds
Vonage and our own payloads, ``sender`` delivers them with retries, ``targets`` keeps them off private networks.
"""

from __future__ import annotations
