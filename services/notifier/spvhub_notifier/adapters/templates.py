"""Jinja2 templates of notifications (package data under templates/<locale>/<kind>.j2): each defines the
blocks subject, title, summary (inbox), body (e-mail text) and action_label; the layouts wrap e-mails."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, Template, pass_context
from spvhub_common.clock import BUCHAREST
from spvhub_common.pii import is_person_key

from spvhub_notifier.domain import normalize_locale


@dataclass(frozen=True)
class Rendered:
    subject: str
    title: str
    summary: str
    text: str
    html: str
    action_label: str


def _parse(value: Any) -> datetime | date | None:
    if value in (None, ""):
        return None
    if isinstance(value, (datetime, date)):
        return value
    s = str(value)
    try:
        return datetime.fromisoformat(s.replace("Z", "+00:00")) if "T" in s else date.fromisoformat(s)
    except ValueError:
        return None


def fmt_date(value: Any) -> str:
    v = _parse(value)
    if v is None:
        return str(value or "")
    if isinstance(v, datetime) and v.tzinfo is not None:
        v = v.astimezone(BUCHAREST)
    return v.strftime("%d.%m.%Y")


def fmt_datetime(value: Any) -> str:
    v = _parse(value)
    if v is None:
        return str(value or "")
    if not isinstance(v, datetime):
        return v.strftime("%d.%m.%Y")
    if v.tzinfo is not None:
        v = v.astimezone(BUCHAREST)
    return v.strftime("%d.%m.%Y %H:%M")


def ro_count(n: Any, singular: str, plural: str) -> str:
    """Romanian counting: 1 zi, 14 zile, 30 de zile, 101 zile, 120 de facturi."""
    try:
        k = int(n)
    except (TypeError, ValueError):
        return f"{n} {plural}"
    if k == 1:
        return f"1 {singular}"
    tail = k % 100
    return f"{k} de {plural}" if tail >= 20 or (k >= 100 and tail == 0) else f"{k} {plural}"


PERSON = {"ro": "persoană fizică", "en": "natural person"}


@pass_context
def id_label(ctx: Any, cif: Any) -> str:
    """How a notice names a company's id: `CIF 123`; a natural person's platform key (spvhub_common.pii) is no
    CIF and means nothing to a reader, so they are named as a natural person (the CNP never reaches the notifier)."""
    if is_person_key(cif):
        return PERSON.get(str(ctx.get("locale")), PERSON["ro"])
    return f"CIF {cif}"


@pass_context
def company(ctx: Any, name: Any, cif: Any) -> str:
    return str(name) if name else id_label(ctx, cif)


class Renderer:
    def __init__(self) -> None:
        self.env = Environment(loader=PackageLoader("spvhub_notifier", "templates"),
                               autoescape=lambda name: bool(name and name.endswith(".html.j2")),
                               keep_trailing_newline=False)
        self.env.filters["d"] = fmt_date
        self.env.filters["dt"] = fmt_datetime
        self.env.globals["co"] = company
        self.env.filters["taxid"] = id_label
        self.env.globals["ro_n"] = ro_count

    def _block(self, tmpl: Template, name: str, ctx_vars: dict[str, Any]) -> str:
        if name not in tmpl.blocks:
            return ""
        return "".join(tmpl.blocks[name](tmpl.new_context(ctx_vars))).strip()

    def render(self, kind: str, locale: str | None, params: dict[str, Any], *, url: str = "",
               user_name: str | None = None) -> Rendered:
        loc = normalize_locale(locale)
        tmpl = self.env.get_template(f"{loc}/{kind}.j2")
        common = self.env.get_template(f"{loc}/_common.j2")
        v = {**params, "locale": loc, "user_name": user_name, "url": url}
        subject = " ".join(self._block(tmpl, "subject", v).split())
        title = " ".join(self._block(tmpl, "title", v).split())
        summary = " ".join(self._block(tmpl, "summary", v).split())
        body = self._block(tmpl, "body", v)
        action_label = self._block(tmpl, "action_label", v)
        layout = {"locale": loc, "subject": subject, "title": title, "body": body, "url": url,
                  "action_label": action_label, "greeting": self._block(common, "greeting", v),
                  "footer": self._block(common, "footer", v), "link_hint": self._block(common, "link_hint", v),
                  "paragraphs": [p.split("\n") for p in body.split("\n\n") if p.strip()]}
        text = self.env.get_template("_layout.txt.j2").render(layout).strip() + "\n"
        html = self.env.get_template("_layout.html.j2").render(layout)
        return Rendered(subject, title, summary, text, html, action_label)
