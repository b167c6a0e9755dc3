"""Hand-designed efficient models (EfficientFormer, MobileViT, MobileOne) profiled and trained
at the same SRAM budget as the searched subnets."""

from baselines.zoo import ZOO, BaselineSpec, build_baseline, profile_baseline, profile_zoo

__all__ = ["ZOO", "BaselineSpec", "build_baseline", "profile_baseline", "profile_zoo"]
