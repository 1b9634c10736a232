"""Money as integer minor units plus an ISO 4217 code; major units only at the legacy edge."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

# Minor-unit exponent per currency (ISO 4217), as Stripe uses them.
_ZERO_DECIMAL = {
    "bif",
    "clp",
    "djf",
    "gnf",
    "jpy",
    "kmf",
    "krw",
    "mga",
    "pyg",
    "rwf",
    "ugx",
    "vnd",
    "vuv",
    "xaf",
    "xof",
    "xpf",
}
_THREE_DECIMAL = {"bhd", "jod", "kwd", "omr", "tnd"}
_TWO_DECIMAL = {
    "aed",
    "afn",
    "all",
    "amd",
    "ang",
    "aoa",
    "ars",
    "aud",
    "awg",
    "azn",
    "bam",
    "bbd",
    "bdt",
    "bgn",
    "bmd",
    "bnd",
    "bob",
    "brl",
    "bsd",
    "bwp",
    "byn",
    "bzd",
    "cad",
    "cdf",
    "chf",
    "cny",
    "cop",
    "crc",
    "cve",
    "czk",
    "dkk",
    "dop",
    "dzd",
    "egp",
    "etb",
    "eur",
    "fjd",
    "fkp",
    "gbp",
    "gel",
    "gip",
    "gmd",
    "gtq",
    "gyd",
    "hkd",
    "hnl",
    "htg",
    "huf",
    "idr",
    "ils",
    "inr",
    "isk",
    "jmd",
    "kes",
    "kgs",
    "khr",
    "kyd",
    "kzt",
    "lak",
    "lbp",
    "lkr",
    "lrd",
    "lsl",
    "mad",
    "mdl",
    "mkd",
    "mmk",
    "mnt",
    "mop",
    "mur",
    "mvr",
    "mwk",
    "mxn",
    "myr",
    "mzn",
    "nad",
    "ngn",
    "nio",
    "nok",
    "npr",
    "nzd",
    "pab",
    "pen",
    "pgk",
    "php",
    "pkr",
    "pln",
    "qar",
    "ron",
    "rsd",
    "rub",
    "sar",
    "sbd",
    "scr",
    "sek",
    "sgd",
    "shp",
    "sle",
    "sos",
    "srd",
    "std",
    "szl",
    "thb",
    "tjs",
    "top",
    "try",
    "ttd",
    "twd",
    "tzs",
    "uah",
    "usd",
    "uyu",
    "uzs",
    "wst",
    "xcd",
    "yer",
    "zar",
    "zmw",
}

# Stripe's minimum charge amounts, in minor units; other currencies use the usd-equivalent 50.
_MINIMUM_CHARGE = {
    "usd": 50,
    "aed": 200,
    "aud": 50,
    "bgn": 100,
    "brl": 50,
    "cad": 50,
    "chf": 50,
    "czk": 1500,
    "dkk": 250,
    "eur": 50,
    "gbp": 30,
    "hkd": 400,
    "huf": 17500,
    "inr": 50,
    "jpy": 50,
    "mxn": 1000,
    "myr": 200,
    "nok": 300,
    "nzd": 50,
    "pln": 200,
    "ron": 200,
    "sek": 300,
    "sgd": 50,
    "thb": 1000,
}

# Stripe accepts at most eight digits in an amount.
MAX_AMOUNT_MINOR = 99_999_999


def is_known_currency(code: str) -> bool:
    return code in _TWO_DECIMAL or code in _ZERO_DECIMAL or code in _THREE_DECIMAL


def currency_exponent(code: str) -> int:
    """How many decimal places the currency's major unit has."""
    if code in _ZERO_DECIMAL:
        return 0
    if code in _THREE_DECIMAL:
        return 3
    if code in _TWO_DECIMAL:
        return 2
    raise ValueError(f"unknown currency {code!r}")


def minimum_charge_minor(code: str) -> int:
    return _MINIMUM_CHARGE.get(code, 50)


def normalize_currency(code: str) -> str:
    """Lower-case a currency code, refusing anything that is not ISO 4217."""
    normalized = code.strip().lower()
    if not is_known_currency(normalized):
        raise ValueError(f"unknown currency {code!r}")
    return normalized


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in the currency's minor unit (cents for usd)."""

    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount_minor, bool) or not isinstance(self.amount_minor, int):
            raise TypeError("amount_minor must be an int")

    def to_major(self) -> Decimal:
        """Exact major-unit value (12.34 for 1234 usd cents), for legacy fields only."""
        return Decimal(self.amount_minor).scaleb(-currency_exponent(self.currency))

    def fee(self, basis_points: int) -> Money:
        """A share of this amount in basis points, rounded down to the minor unit."""
        return Money(self.amount_minor * basis_points // 10_000, self.currency)

    def __sub__(self, other: Money) -> Money:
        if other.currency != self.currency:
            raise ValueError("cannot subtract different currencies")
        return Money(self.amount_minor - other.amount_minor, self.currency)


def major_json_number(amount_minor: int, currency: str) -> float | int:
    """Legacy major-unit amount as a JSON number (exact decimal, shortest representation)."""
    major = Money(amount_minor, currency).to_major()
    if currency_exponent(currency) == 0:
        return int(major)
    return float(major)


def money_from_major(major: Decimal, currency: str) -> Money:
    """Exact major units (199.98 usd) as minor units; refuses fractions of a minor unit.

    Parse JSON with `parse_float=Decimal` first: a float has already lost exactness.
    """
    if not major.is_finite():
        raise ValueError("amount must be a finite number")
    minor = major.scaleb(currency_exponent(currency))
    if minor != minor.to_integral_value():
        raise ValueError(f"{major} has more decimals than {currency} allows")
    return Money(int(minor), currency)
