"""The HTTP/JSON gateway for web and app clients."""
