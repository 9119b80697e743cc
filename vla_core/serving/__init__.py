"""Serving a policy to robots over openpi's websocket + msgpack protocol (see server.py)."""
