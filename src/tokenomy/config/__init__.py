"""Configuration: the YAML file, validated into frozen typed models."""

from tokenomy.config.loader import ConfigError, ConfigIssue, load_config, parse_config
from tokenomy.config.models import Deployment, GatewayConfig, LogicalModel

__all__ = ["ConfigError", "ConfigIssue", "Deployment", "GatewayConfig", "LogicalModel", "load_config", "parse_config"]
