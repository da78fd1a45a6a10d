"""Configuration in three rooms: `schema` (the sections), `validation` (one checker for every
layer) and `loading` (defaults < YAML file < environment < flags).

The wiring (`exporter.app`) hands each part only its own section of the loaded `Config`.
"""
from __future__ import annotations

from exporter.config.loading import ENV_PREFIX, MAX_FILE_BYTES, env_name, flag_name, leaves, load, read_file, read_yaml
from exporter.config.schema import (
    DEFAULT_PORT,
    FLEET_EXIT_CODES,
    AgentConfig,
    Config,
    DockerConfig,
    Duration,
    KubernetesConfig,
    ListenAddress,
    LogConfig,
    ProbeConfig,
    PullGuardConfig,
    PullImageConfig,
    ResilienceConfig,
    StateConfig,
    TextfileConfig,
    UrlPath,
    WebConfig,
)
from exporter.config.validation import ConfigError, build

__all__ = [
    "ENV_PREFIX", "MAX_FILE_BYTES", "env_name", "flag_name", "leaves", "load", "read_file", "read_yaml",
    "DEFAULT_PORT", "FLEET_EXIT_CODES", "AgentConfig", "Config", "DockerConfig", "Duration", "KubernetesConfig",
    "ListenAddress", "LogConfig", "ProbeConfig", "PullGuardConfig", "PullImageConfig", "ResilienceConfig",
    "StateConfig", "TextfileConfig", "UrlPath", "WebConfig", "ConfigError", "build",
]
