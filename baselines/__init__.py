"""Hand-designed efficient models (EfficientFormer, MobileViT, MobileOne) profiled and trained
at the same SRAM budget as the searched subnets (`baselines.zoo`; ``python -m baselines``)."""
