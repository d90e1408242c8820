"""All of crmscore's configuration, in one typed place.

Every value can be overridden by an environment variable prefixed ``CRMSCORE_``; nested sections use a
double underscore, e.g. ``CRMSCORE_SERVING__MAX_BATCH=500`` or ``CRMSCORE_TRACKING_URI=http://...``.
Stages read their section from :func:`get_settings` and never hard-code paths or thresholds.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class GeneratorSettings(BaseModel):
    """Defaults of ``crmscore generate`` (the embedded demo bank)."""

    customers: int = 20_000
    months: int = 24
    seed: int = 7
    start: str = "2024-01-01"


class Settings(BaseSettings):
    """Root settings object. Sections are added by the stages that own them."""

    model_config = SettingsConfigDict(
        env_prefix="CRMSCORE_", env_nested_delimiter="__", extra="ignore"
    )

    #: Root of every dataset crmscore writes: raw/, oracle/, features/ live below it.
    data_dir: Path = Field(default=PROJECT_ROOT / "data")
    generator: GeneratorSettings = GeneratorSettings()

    @property
    def raw_dir(self) -> Path:
        """Validated raw tables (the schema in :mod:`crmscore.schema`)."""
        return self.data_dir / "raw"

    @property
    def oracle_dir(self) -> Path:
        """Synthetic truth. Never read by features or training; only by evaluation."""
        return self.data_dir / "oracle"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (environment read once)."""
    return Settings()
