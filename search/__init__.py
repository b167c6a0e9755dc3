"""Search over spaces and subnets: MCUFormer's space evolution (`search.space_evolution`)."""
