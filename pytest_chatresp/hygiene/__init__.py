"""Secret hygiene: the one secret policy (:mod:`.policy`) and the scan that applies it
(:mod:`.scan`) to what is about to be written or is already on disk."""
