"""chat-gateway: websocket sessions, local room membership, publish and fan-out."""
