"""chat-history: stores every chat message and serves it back in id order."""
