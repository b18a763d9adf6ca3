"""Transports: REST, /ws and SSE. They translate; the core decides."""
