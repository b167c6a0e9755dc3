"""AutoFormer's evolutionary (and random) subnet search under a memory constraint
(`search.subnet.evolution`), with inherited-weight fitness (`search.subnet.evaluator`) and the
resumable run that reports and hands over the best subnet (`search.subnet.run`)."""
