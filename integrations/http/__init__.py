"""HTTP: GET a URL or POST JSON, on the tool's allowed domains."""
