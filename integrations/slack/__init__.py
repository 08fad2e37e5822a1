"""Slack: chat.postMessage with a bot token, or an incoming webhook."""
