"""n8n: start a workflow through its webhook."""
