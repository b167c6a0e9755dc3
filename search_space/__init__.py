"""Search space and weight-sharing ViT supernet with MCUFormer's low-rank and token axes."""

from common.errors import ConfigError
from search_space.config import SubnetConfig, low_rank_dim
from search_space.space import SearchSpace, load_space

__all__ = ["ConfigError", "SearchSpace", "SubnetConfig", "load_space", "low_rank_dim"]
