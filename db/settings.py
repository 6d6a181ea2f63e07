"""Settings from the environment (``CSCAT_*``) and a TOML config file.

Precedence: explicit arguments, then environment, then the config file
(``$CSCAT_CONFIG`` or ``<user config dir>/cscat/config.toml``), then defaults.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, ValidationError, model_validator
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


class ConfigError(ValueError):
    """A bad configuration (file syntax, unknown key, bad value): one line for the user."""


#: ``CSCAT_*`` environment variables that are not settings.
NOT_SETTINGS = frozenset({"CSCAT_CONFIG", "CSCAT_SOAK", "CSCAT_REMOTE_DATA",
                          "CSCAT_COMMAND_SERVER"})


class Settings(BaseSettings):
    """cscat configuration. Every field can be set as ``CSCAT_<NAME>`` or in the config file."""

    model_config = SettingsConfigDict(env_prefix="CSCAT_", extra="ignore",
                                      allow_inf_nan=False)  # every number finite

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy or libpq URL of a PostgreSQL server; unset: the embedded server.",
    )
    data_dir: Path = Field(
        default_factory=lambda: Path(platformdirs.user_data_dir("cscat")),
        description="Where the embedded server keeps its data.",
    )
    embedded_port: int | None = Field(
        default=None, ge=1, le=65535,
        description="TCP port of the embedded server on 127.0.0.1; unset: a free one."
    )
    reader_url: str | None = Field(
        default=None,
        description="URL of the read-only login (cscat sql); unset: cscat_reader, set up by cscat "
                    "with a generated password (embedded server, or CSCAT_DATABASE_URL's admin).",
    )
    sql_timeout_s: float = Field(default=120.0, gt=0,
                                 description="cscat sql: statement timeout in seconds")
    sql_max_rows: int = Field(default=100_000, gt=0,
                              description="cscat sql: refuse results with more rows than this")

    # -- services -------------------------------------------------------------------------
    csc_tap_url: str = Field(default="http://cda.cfa.harvard.edu/csc21tap",
                             description="CSC TAP service (CSC 2.0: .../csc2tap)")
    csc_chunk_obsids: int = Field(default=50, ge=1, description="ObsIDs per TAP query")
    csc_tap_timeout_s: float = Field(
        default=600.0, gt=0, description="seconds to wait for one TAP answer before retrying")
    csc_tap_attempts: int = Field(
        default=5, ge=1, description="attempts per TAP query (timeouts, 5xx, unreadable "
                                     "answers) before the ingest fails")
    xmatch_url: str | None = Field(default=None,
                                   description="CDS X-Match endpoint; unset: astroquery's")
    xmatch_timeout_s: float = Field(
        default=300.0, gt=0, description="seconds to wait for one X-Match answer")
    xmatch_attempts: int = Field(default=4, ge=1, description="attempts per X-Match batch")
    simbad_radius_arcsec: float = Field(default=1.0, gt=0)
    simbad_refresh_days: float = Field(default=90.0, ge=0,
                                       description="re-crossmatch sources older than this")
    counterpart_refresh_days: float = Field(
        default=90.0, description="re-match counterparts (Gaia DR3, 2MASS, AllWISE) older "
                                  "than this")
    counterpart_max_radius_arcsec: float = Field(
        default=10.0, gt=0, description="largest candidate radius (the radius is 4.29 "
                                        "sigma of the combined position error)")
    counterpart_density_radius_arcsec: float = Field(
        default=20.0, gt=0, le=180, description="X-Match radius: objects beyond the "
                                                "candidate radius give the local density")
    counterpart_completeness: float = Field(
        default=0.5, gt=0, lt=1, description="NWAY's prior completeness: expected share of "
                                             "sources with a counterpart per catalogue")
    counterpart_min_p_any: float = Field(
        default=0.5, ge=0, le=1, description="choose a counterpart only when p_any >= this")
    # -- classification policy --------------------------------------------------------------
    n_components: int = Field(default=6, ge=1)
    random_state: int = Field(default=42, ge=0, le=2**32 - 1)  # numpy seeds
    refit_labeled_change: float = Field(
        default=0.10, ge=0,
        description="refit when labeled detections changed by this fraction")
    refit_detection_growth: float = Field(
        default=0.20, ge=0, description="refit when detections grew by this fraction")
    promotion_tolerance: float = Field(
        default=0.02, ge=0,
        description="promote a refit unless its aggregated accuracy is worse "
                    "than the active model's by more than this")
    features: Literal["paper12", "paper11"] = Field(
        default="paper12", description="feature set: the paper's 12, or 11 without var_newq_b "
                                       "(CSC tables without var_min_b/var_max_b)")
    max_unclassifiable_share: float = Field(
        default=0.10, ge=0.0, le=1.0,
        description="a refit whose model cannot classify more than this share of the "
                    "detections is not promoted")
    classify_other_types: bool = Field(
        default=False, description="also adopt model classes for sources with other known "
                                   "SIMBAD types (the paper does not)")
    families: list[Literal["ctl", "muwclass", "claxboi", "gbm"]] = Field(
        default_factory=lambda: ["ctl", "muwclass", "claxboi", "gbm"],
        description="classifier families the catalog fits and applies (classifier.FAMILIES); "
                    "ctl is always needed (catalog.source_class is built from its results)")
    primary_family: Literal["ctl", "muwclass", "claxboi", "gbm"] = Field(
        default="ctl", description="the family whose class catalog.source_class adopts for "
                                   "sources without a reference SIMBAD type (any enabled "
                                   "family; its classes must be the catalog's). Unset: "
                                   "classifier.DEFAULT_FAMILY when it is enabled, else ctl")
    # -- schedules (cscat serve) --------------------------------------------------------------
    update_cron: str = "0 3 * * *"
    refit_cron: str = "0 4 * * 0"
    # -- where the heavy per-partition tasks run (flows.runtime.task_runner) ----------------
    task_runner: Literal["thread", "dask"] = Field(
        default="thread", description="thread: in this process; dask: on a Dask cluster "
                                      "(dask_address, or a local one of dask_workers)")
    dask_address: str | None = Field(
        default=None, description="scheduler of an existing Dask cluster, e.g. "
                                  "tcp://10.0.0.5:8786; unset: a local cluster per flow run")
    dask_workers: int = Field(default=2, ge=1,
                              description="worker processes of the local Dask cluster")

    @model_validator(mode="before")
    @classmethod
    def _default_primary_family(cls, data):
        """An unset ``primary_family`` is ``classifier.DEFAULT_FAMILY`` (the calibrated one)
        when that family is enabled, else ``ctl`` (the field's own default)."""
        if isinstance(data, dict) and data.get("primary_family") is None:
            families = data.get("families", cls.model_fields["families"].default_factory())
            if isinstance(families, (list, tuple)):
                from classifier.families import DEFAULT_FAMILY

                data = {**data, "primary_family": DEFAULT_FAMILY if DEFAULT_FAMILY in families
                        else "ctl"}
        return data

    @model_validator(mode="after")
    def _families_consistent(self) -> Settings:
        if "ctl" not in self.families:
            raise ValueError("families must include 'ctl' (catalog.source_class is built "
                             "from its detection results)")
        if len(set(self.families)) != len(self.families):
            raise ValueError("families lists a family twice")
        if self.primary_family not in self.families:  # every enabled family is trained on
            # the SIMBAD label set, the catalog's classes (checked again at publish)
            raise ValueError(f"primary_family {self.primary_family!r} is not an enabled "
                             f"family; allowed: {', '.join(self.families)} (families)")
        return self

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


def _did_you_mean(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"


def check_config_file(path: Path) -> None:
    """Refuse a config file that is not TOML or names a key that is not a setting."""
    if not path.exists():
        return
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"config file {path}: {e}") from None
    known = sorted(Settings.model_fields)
    for key in data:
        if key not in Settings.model_fields:
            raise ConfigError(f"config file {path}: unknown key {key!r}"
                              + _did_you_mean(key, known))


def unknown_environment() -> list[str]:
    """Warnings for ``CSCAT_*`` environment variables that are no setting (e.g. misspelt)."""
    known = [f"CSCAT_{f.upper()}" for f in Settings.model_fields]
    return [f"{name} is not a cscat setting{_did_you_mean(name, known)}; ignored"
            for name in sorted(os.environ)
            if name.startswith("CSCAT_") and name not in NOT_SETTINGS and name not in known]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once); a bad one raises :class:`ConfigError`."""
    path = config_path()
    check_config_file(path)
    try:
        return Settings()
    except ValidationError as e:
        err = e.errors()[0]
        if not err["loc"]:  # a check across settings (families / primary_family)
            raise ConfigError(f"settings: {err['msg'].removeprefix('Value error, ')}") from None
        key = str(err["loc"][0])
        env = f"CSCAT_{key.upper()}"
        where = env if env in os.environ else f"{key} in {path}"
        raise ConfigError(f"setting {where} = {err.get('input')!r}: {err['msg']}") from None
