"""The lender profile (``data/lender/profile.yaml``): who sends the reminders, the contact points and the
licences every message prints.

Messages are rendered by ``dunning.render``; the profile is apart from it because the services that only
quote the lender's name and contacts in fixed texts (the replies and confirmations of ``dunning.inbound``,
the reconcile sweep's confirmations) need the profile without the renderer's Jinja2 and Babel.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Final

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dunning.models import JurisdictionCode
from dunning.yamlio import safe_load

DEFAULT_PROFILE_PATH: Final = Path(__file__).parent / "data" / "lender" / "profile.yaml"


class CatalogError(ValueError):
    """The template catalog or the lender profile on disk is invalid (fails at load, not at send)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


HttpsUrl = Annotated[str, Field(pattern=r"^https://[^\s]+$", max_length=200)]
ShortText = Annotated[str, Field(min_length=1, max_length=80)]


class LenderOverrides(_Frozen):
    """Per-locale values of the lender profile (a Chinese name, a local help line, …)."""

    name: ShortText | None = None
    short_name: ShortText | None = None
    help_phone: ShortText | None = None
    help_url: HttpsUrl | None = None
    pay_url: HttpsUrl | None = None


@dataclass(frozen=True)
class LenderDetails:
    """The lender's values as one locale prints them."""

    name: str
    short_name: str
    help_phone: str
    help_url: str
    pay_url: str


class LenderProfile(_Frozen):
    """Who sends the reminders: identity, contact points and licences printed in every message."""

    name: ShortText
    short_name: ShortText
    help_phone: ShortText
    help_url: HttpsUrl
    pay_url: HttpsUrl
    # Jurisdiction code → licence text exactly as it must appear ("NYC DCWP License No. …").
    licence_numbers: dict[JurisdictionCode, ShortText] = {}
    # Registered mainland-China SMS signature, without the brackets: 2–12 characters, at least 2 Chinese.
    cn_signature: str | None = None
    # Template locale → values in that language; jurisdiction code → values for borrowers there.
    locales: dict[str, LenderOverrides] = {}
    jurisdictions: dict[JurisdictionCode, LenderOverrides] = {}

    @field_validator("cn_signature")
    @classmethod
    def _signature_shape(cls, value: str | None) -> str | None:
        if value is None:
            return value
        han = sum(1 for char in value if is_han(char))
        if not 2 <= len(value) <= 12 or han < 2 or any(char in "【】[] " for char in value):
            raise ValueError("cn_signature must be 2-12 characters with at least 2 Chinese, no brackets")
        return value

    def resolved(self, locale: str, jurisdiction: str | None = None) -> LenderDetails:
        """The values one message prints: base, then the template locale's, then the jurisdiction's.

        Locale overrides carry what depends on the language (a Chinese name); jurisdiction overrides
        (US, then US-NY, then US-NY-NYC: the most specific wins) carry what depends on where the borrower
        is (a local help line), so a Chinese-speaking borrower in the US still gets the US number.
        """
        # Later layers win: the locale, then the jurisdictions from the widest to the most specific.
        layers = [self.locales.get(locale, LenderOverrides())]
        layers += [
            self.jurisdictions[code] for code in with_parents(jurisdiction) if code in self.jurisdictions
        ]

        def pick(field: str, base: str) -> str:
            value = base
            for layer in layers:
                value = getattr(layer, field) or value
            return value

        return LenderDetails(
            name=pick("name", self.name),
            short_name=pick("short_name", self.short_name),
            help_phone=pick("help_phone", self.help_phone),
            help_url=pick("help_url", self.help_url),
            pay_url=pick("pay_url", self.pay_url),
        )

    def licences_for(self, jurisdictions: Iterable[str]) -> list[str]:
        """Licence texts held for any of ``jurisdictions`` or their parents (US-NY-NYC → US-NY → US)."""
        codes = {parent for code in jurisdictions for parent in with_parents(code)}
        return [self.licence_numbers[code] for code in sorted(codes) if code in self.licence_numbers]


def with_parents(code: str | None) -> list[str]:
    """US-NY-NYC → [US, US-NY, US-NY-NYC]: a code and every code it lies within, widest first."""
    if not code:
        return []
    parts = code.split("-")
    return ["-".join(parts[:n]) for n in range(1, len(parts) + 1)]


def is_han(char: str) -> bool:
    return "CJK UNIFIED IDEOGRAPH" in unicodedata.name(char, "")


def read_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            return safe_load(handle)
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogError(f"{path}: {exc}") from exc


def _load_profile(path: Path) -> LenderProfile:
    try:
        return LenderProfile.model_validate(read_yaml(path))
    except ValidationError as exc:
        raise CatalogError(f"{path}: {exc}") from exc


@cache
def _default_profile() -> LenderProfile:
    return _load_profile(DEFAULT_PROFILE_PATH)


def load_profile(path: Path | None = None) -> LenderProfile:
    """Load and validate the lender profile; the packaged default is loaded once and cached."""
    return _default_profile() if path is None else _load_profile(path)
