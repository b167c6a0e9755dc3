"""Search over spaces and subnets, two pipelines: MCUFormer's space evolution (`search.space`)
and the budgeted subnet search (`search.subnet`). Both check memory through one
`search.constraint.MemoryConstraint`; `search.launch` runs a visit as a job."""
