"""Gateway configuration: value classes and the YAML loader."""

from gateway.config.loader import ConfigError, load_api_keys, load_config, parse_config
from gateway.config.models import (
    ALL_ROLES,
    AdapterConfig,
    GatewayConfig,
    RefinementConfig,
    Role,
    TargetConfig,
)

__all__ = [
    "ALL_ROLES",
    "AdapterConfig",
    "ConfigError",
    "GatewayConfig",
    "RefinementConfig",
    "Role",
    "TargetConfig",
    "load_api_keys",
    "load_config",
    "parse_config",
]
