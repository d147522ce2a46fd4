"""Where pictures come from: folders, zip archives, single files and URL lists."""

from loraforge.sources.enumerate import SourceLimits, enumerate_sources, read_source_item

__all__ = ["SourceLimits", "enumerate_sources", "read_source_item"]
