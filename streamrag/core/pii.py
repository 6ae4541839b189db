"""PII redaction at ingest, per tenant: e-mail addresses, phone numbers (libphonenumber's matcher, in the
tenant's region and the region of the text's script), Japanese postal codes (〒),
payment card numbers (Luhn-checked, python-stdnum), IBANs (mod-97-checked, python-stdnum), IPv4 and IPv6
addresses, and operator-configured patterns. Redacted text is what gets chunked, embedded and stored:
the original never reaches LanceDB, the cache or the audit topic."""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

import phonenumbers
from stdnum import iban, luhn

from streamrag.core.config import PiiSettings

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\d|\.\d)")
# Japanese postal codes, written after the postal mark (〒123-4567); bare 123-4567 is too common to redact
_JP_POSTAL = re.compile(r"〒\s?\d{3}-?\d{4}(?!\d)")
# regions whose numbers text in a script may hold without a country code (beyond the tenant's phone_region)
_SCRIPT_REGIONS = ((re.compile(r"[\u3040-\u30ff]"), "JP"), (re.compile(r"[\uac00-\ud7af]"), "KR"),
                   (re.compile(r"[\u4e00-\u9fff]"), "CN"))
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")


def _valid_card(s: str) -> bool:
    digits = re.sub(r"\D", "", s)
    # card networks' numbers start with 2-6 (Mastercard, Amex, Visa, Discover, ...); Luhn alone passes 0000…
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and len(set(digits)) > 1 and luhn.is_valid(digits)


def _valid_ip(s: str) -> bool:
    try:
        ipaddress.ip_address(s)
    except ValueError:
        return False
    return True


class Redactor:
    def __init__(self, settings: PiiSettings) -> None:
        self.s = settings
        self.custom = {name: re.compile(rx) for name, rx in settings.patterns.items()}

    def redact(self, text: str, counts: Counter[str] | None = None) -> str:
        counts = counts if counts is not None else Counter()
        kinds = set(self.s.kinds)
        # order matters: IBANs and cards before phones (long digit runs look like phone numbers)
        if "email" in kinds:
            text = _sub(_EMAIL, text, "EMAIL", counts, lambda _: True)
        if "iban" in kinds:
            text = _sub(_IBAN, text, "IBAN", counts, lambda m: iban.is_valid(m))
        if "card" in kinds:
            text = _sub(_CARD, text, "CARD", counts, _valid_card)
        if "ip" in kinds:
            text = _sub(_IPV4, text, "IP", counts, _valid_ip)
            text = _sub(_IPV6, text, "IP", counts, lambda m: m.count(":") >= 2 and _valid_ip(m))
        if "postal" in kinds:
            text = _sub(_JP_POSTAL, text, "POSTAL", counts, lambda _: True)
        if "phone" in kinds:
            for region in self._regions(text):
                text = self._phones(text, counts, region)
        for name, rx in self.custom.items():
            text = _sub(rx, text, name.upper(), counts, lambda _: True)
        return text

    def _regions(self, text: str) -> list[str]:
        """The tenant's region, then the region of the script the text is written in (Japanese text holds
        Japanese numbers: 03-1234-5678 is not a valid number in DE); kana before Han (Japanese uses both)."""
        out = [self.s.phone_region]
        for rx, region in _SCRIPT_REGIONS:
            if rx.search(text):
                if region not in out:
                    out.append(region)
                break
        return out

    def _phones(self, text: str, counts: Counter[str], region: str) -> str:
        out, last = [], 0
        for m in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
            out.append(text[last:m.start])
            out.append("[PHONE]")
            counts["phone"] += 1
            last = m.end
        out.append(text[last:])
        return "".join(out)


def _sub(rx: re.Pattern[str], text: str, label: str, counts: Counter[str], valid: Callable[[str], bool]) -> str:
    def repl(m: re.Match[str]) -> str:
        if not valid(m.group(0)):
            return m.group(0)
        counts[label.lower()] += 1
        return f"[{label}]"

    return rx.sub(repl, text)


class TenantRedactors:
    """The redactor of each tenant (None: that tenant's text is kept as written)."""

    def __init__(self, default_on: bool, tenants: Mapping[str, PiiSettings]) -> None:
        self.default = Redactor(PiiSettings()) if default_on else None
        self.by_tenant = {t: Redactor(p) if p.enabled else None for t, p in tenants.items()}
        self.counts: Counter[str] = Counter()

    def for_tenant(self, tenant: str) -> Redactor | None:
        return self.by_tenant.get(tenant, self.default)

    def redact(self, tenant: str, texts: Sequence[str]) -> list[str] | None:
        r = self.for_tenant(tenant)
        return None if r is None else [r.redact(t, self.counts) for t in texts]
