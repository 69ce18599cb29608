"""Secret hygiene: the one secret policy (:mod:`.policy`), the scan that applies it
(:mod:`.scan`) to what is about to be written or is already on disk, ``chatresp scrub``'s
rewriting of cassettes (:mod:`.scrub`) and ``chatresp audit``'s findings (:mod:`.audit`)."""
