"""E-mail through Django's e-mail backend (SMTP)."""
