"""Model wrappers (captioners, CLIP, face detectors) behind small protocols; heavy imports stay inside."""
