"""Console entry points: chat-gateway, chat-history, chatstack."""
