"""Texts of the screens, one JSON catalogue per locale (locales/<ro|en>.json); Romanian is the default and
the fallback, formats of dates and amounts follow the locale."""
from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any

LOCALES = ("ro", "en")
DIR = Path(__file__).parent / "locales"


@lru_cache
def catalogue(locale: str) -> dict[str, str]:
    return json.loads((DIR / f"{locale}.json").read_text(encoding="utf-8"))


class Translator:
    def __init__(self, locale: str) -> None:
        self.locale = locale if locale in LOCALES else "ro"

    def has(self, key: str) -> bool:
        return key in catalogue(self.locale) or key in catalogue("ro")

    def __call__(self, key: str, **kw: Any) -> str:
        text = catalogue(self.locale).get(key) or catalogue("ro").get(key) or key
        return text.format(**kw) if kw else text

    def dt(self, v: Any, with_time: bool = True) -> str:
        if not v:
            return "—"
        if isinstance(v, str):
            try:
                v = datetime.fromisoformat(v.replace("Z", "+00:00")) if "T" in v else date.fromisoformat(v)
            except ValueError:
                return v
        if isinstance(v, datetime):
            return v.strftime("%d.%m.%Y %H:%M" if with_time else "%d.%m.%Y") if self.locale == "ro" else \
                v.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")
        return v.strftime("%d.%m.%Y") if self.locale == "ro" else v.isoformat()

    def d(self, v: Any) -> str:
        return self.dt(v, with_time=False)

    def money(self, v: Any, currency: str | None = None) -> str:
        if v is None or v == "":
            return "—"
        try:
            n = Decimal(str(v))
        except InvalidOperation:
            return str(v)
        s = f"{n:,.2f}"
        if self.locale == "ro":
            s = s.replace(",", " ").replace(".", ",").replace(" ", ".")
        return f"{s} {currency}" if currency else s
