"""Webhooks: POST the model's JSON to the configured URL, HMAC-signed."""
