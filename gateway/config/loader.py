"""Load ``routes.yaml``: ``${ENV_VAR}`` interpolation, validation, readable error paths."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.config.models import GatewayConfig

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


class ConfigError(Exception):
    """The config file cannot be used; ``errors`` holds ``(key path, message)`` pairs."""

    def __init__(self, source: str, errors: list[tuple[str, str]]) -> None:
        self.source = source
        self.errors = errors
        lines = "\n".join(f"  {path}: {message}" for path, message in errors)
        super().__init__(f"invalid config {source}:\n{lines}")


def interpolate_env(value: Any, env: Mapping[str, str], path: str = "", missing: list[str] | None = None) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string of a parsed YAML tree."""
    if missing is None:
        missing = []
    if isinstance(value, str):

        def _sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            missing.append(f"{path or '<root>'}: environment variable {name} is not set")
            return ""

        return _ENV_PATTERN.sub(_sub, value)
    if isinstance(value, dict):
        return {k: interpolate_env(v, env, f"{path}.{k}" if path else str(k), missing) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate_env(v, env, f"{path}[{i}]", missing) for i, v in enumerate(value)]
    return value


def _format_location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def _resolve_paths(config: GatewayConfig, base_dir: Path) -> GatewayConfig:
    """Make adapter prompt paths, the API-key file and the audit log absolute, relative to the config file."""
    updates: dict[str, Any] = {}
    for role in ("cleaner", "describer", "paraphraser"):
        adapter = getattr(config.adapters, role)
        if adapter is not None and not adapter.prompt.is_absolute():
            updates[role] = adapter.model_copy(update={"prompt": (base_dir / adapter.prompt).resolve()})
    new = config
    if updates:
        new = new.model_copy(update={"adapters": new.adapters.model_copy(update=updates)})
    keys_file = new.server.api_keys_file
    if keys_file is not None and not keys_file.is_absolute():
        new = new.model_copy(update={"server": new.server.model_copy(update={"api_keys_file": (base_dir / keys_file).resolve()})})
    audit_path = new.telemetry.audit_path
    if audit_path is not None and not audit_path.is_absolute():
        new = new.model_copy(update={"telemetry": new.telemetry.model_copy(update={"audit_path": (base_dir / audit_path).resolve()})})
    tenant_keys = new.server.keys_file
    if tenant_keys is not None and not tenant_keys.is_absolute():
        new = new.model_copy(update={"server": new.server.model_copy(update={"keys_file": (base_dir / tenant_keys).resolve()})})
    usage_log = new.telemetry.usage_log
    if usage_log is not None and not usage_log.is_absolute():
        new = new.model_copy(update={"telemetry": new.telemetry.model_copy(update={"usage_log": (base_dir / usage_log).resolve()})})
    return new


def _check_files(config: GatewayConfig) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = []
    for role in ("cleaner", "describer", "paraphraser"):
        adapter = getattr(config.adapters, role)
        if adapter is not None and not adapter.prompt.is_file():
            errors.append((f"adapters.{role}.prompt", f"prompt template not found: {adapter.prompt}"))
    keys_file = config.server.api_keys_file
    if keys_file is not None and not keys_file.is_file():
        errors.append(("server.api_keys_file", f"API key file not found: {keys_file}"))
    audit_path = config.telemetry.audit_path
    if audit_path is not None and not audit_path.parent.is_dir():
        errors.append(("telemetry.audit_path", f"directory not found for the audit log: {audit_path.parent}"))
    usage_log = config.telemetry.usage_log
    if usage_log is not None and not usage_log.parent.is_dir():
        errors.append(("telemetry.usage_log", f"directory not found for the usage log: {usage_log.parent}"))
    if config.server.keys or config.server.keys_file is not None:
        from gateway.tenants.keyring import keys_errors  # the tenant keys file parsed, names unique

        errors += keys_errors(config.server.keys, config.server.keys_file)
    return errors


def parse_config(data: Any, *, base_dir: Path, source: str = "<config>", env: Mapping[str, str] | None = None) -> GatewayConfig:
    """Validate an already-parsed YAML tree; raises :class:`ConfigError` listing every problem."""
    if not isinstance(data, dict):
        raise ConfigError(source, [("<root>", "the config must be a mapping")])
    missing: list[str] = []
    data = interpolate_env(data, os.environ if env is None else env, missing=missing)
    errors = [(m.split(": ", 1)[0], m.split(": ", 1)[1]) for m in missing]
    try:
        config = GatewayConfig.model_validate(data)
    except ValidationError as exc:
        errors += [(_format_location(err["loc"]), err["msg"]) for err in exc.errors()]
        raise ConfigError(source, errors) from None
    config = _resolve_paths(config, base_dir)
    errors += _check_files(config)
    if errors:
        raise ConfigError(source, errors)
    return config


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> GatewayConfig:
    """Read, interpolate and validate a routes file."""
    path = Path(path)
    return load_config_bytes(read_config_bytes(path), path, env)


def read_config_bytes(path: Path) -> bytes:
    """The routes file's bytes; :class:`ConfigError` (``<file>``) when unreadable."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(str(path), [("<file>", str(exc))]) from None


def load_config_bytes(raw: bytes, path: Path, env: Mapping[str, str] | None = None) -> GatewayConfig:
    """Parse, interpolate and validate ``raw``, the bytes of the routes file at ``path``."""
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), [("<file>", f"not UTF-8: {exc}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [("<yaml>", str(exc).replace("\n", " "))]) from None
    return parse_config(data, base_dir=path.resolve().parent, source=str(path), env=env)


def load_api_keys(config: GatewayConfig, env: Mapping[str, str] | None = None) -> frozenset[str]:
    """All accepted client API keys: literal list, env var (comma-separated) and key file."""
    env = os.environ if env is None else env
    keys = {k.strip() for k in config.server.api_keys if k.strip()}
    if config.server.api_keys_env:
        keys |= {k.strip() for k in env.get(config.server.api_keys_env, "").split(",") if k.strip()}
    if config.server.api_keys_file is not None:
        lines = config.server.api_keys_file.read_text(encoding="utf-8").splitlines()
        keys |= {ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")}
    return frozenset(keys)
