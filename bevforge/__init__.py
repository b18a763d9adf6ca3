"""BevForge OS core: the plant, its store, its bus and its command pipeline."""

__version__ = "0.1.0"
