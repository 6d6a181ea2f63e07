"""Settings from the environment (``CSCAT_*``) and a TOML config file.

Precedence: explicit arguments, then environment, then the config file
(``$CSCAT_CONFIG`` or ``<user config dir>/cscat/config.toml``), then defaults.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import platformdirs
from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def config_path() -> Path:
    """The config file cscat reads (it need not exist)."""
    explicit = os.environ.get("CSCAT_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    return Path(platformdirs.user_config_dir("cscat")) / "config.toml"


class Settings(BaseSettings):
    """cscat configuration. Every field can be set as ``CSCAT_<NAME>`` or in the config file."""

    model_config = SettingsConfigDict(env_prefix="CSCAT_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy or libpq URL of a PostgreSQL server; unset: the embedded server.",
    )
    data_dir: Path = Field(
        default_factory=lambda: Path(platformdirs.user_data_dir("cscat")),
        description="Where the embedded server keeps its data.",
    )
    embedded_port: int | None = Field(
        default=None, description="TCP port of the embedded server on 127.0.0.1; unset: a free one."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=config_path())
        return (init_settings, env_settings, toml)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
