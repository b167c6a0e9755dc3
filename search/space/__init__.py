"""MCUFormer's search-space evolution: one supernet per visited (low-rank ratio, patch size)
point, scored by S = A + eta * R, moved by a local linear fit (`search.space.loop`), with real
training visits as resumable jobs (`search.space.run`, `search.space.visit`)."""
