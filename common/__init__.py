"""What every layer shares and nothing else: the user-facing error and how entry points report
it (`common.errors`), atomic files and output directories (`common.files`), strict YAML and
strict dataclass configs with ``key=value`` overrides (`common.strict_yaml`, `common.config`),
and the project's log setup (`common.logs`). No torch, no model code."""
