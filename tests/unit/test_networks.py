from __future__ import annotations

import phonenumbers
import pytest
from phonenumbers import carrier
from phonenumbers.carrierdata import CARRIER_DATA

from smsgate.core.networks import NETWORK_NAMES, network_for, network_name
from smsgate.core.numbers import Number, parse_dutch_mobile, parse_international


@pytest.mark.parametrize(
    ("raw", "range_holder", "code"),
    [
        ("0612345678", "KPN", "20408"),  # 3161
        ("0620123456", "KPN", "20408"),
        ("0653123456", "KPN", "20408"),
        ("0611123456", "Vodafone Libertel B.V.", "20404"),
        ("0621123456", "Vodafone Libertel B.V.", "20404"),
        ("0650123456", "Vodafone Libertel B.V.", "20404"),
        ("0614123456", "T-Mobile", "20416"),
        ("0641123456", "T-Mobile", "20416"),
        ("0681123456", "T-Mobile", "20416"),
        ("0618123456", "T-Mobile Thuis", "20416"),
        ("0636123456", "Tele2", "20402"),
        ("0640123456", "Tele2", "20402"),
        ("0637123456", "Teleena (MVNE)", "20407"),
        ("0645123456", "Telfort", "20412"),
        ("0658123456", "Lebara", "20417"),
        ("0684123456", "Lycamobile", "20409"),
        ("0687123456", "Lycamobile", "20409"),
        ("0659123456", "Vectone Mobile/Delight Mobile", "20406"),
    ],
)
def test_dutch_range_holders(raw: str, range_holder: str, code: str) -> None:
    number = parse_dutch_mobile(raw)
    assert carrier.name_for_number(phonenumbers.parse(number.e164), "en") == range_holder
    assert network_for(number) == code
    assert network_name(code) is not None


@pytest.mark.parametrize(
    "raw",
    [
        "0635712345",  # ASPIDER: two MNCs in public lists (20423 / 20430), so not guessed
        "0658012345",  # Private Mobility Nederland: no MNC known
        "0659912345",  # Motto
        "097012345678",  # M2M: no carrier data
    ],
)
def test_unknown_range_holder_is_none(raw: str) -> None:
    assert network_for(parse_dutch_mobile(raw)) is None


def test_non_mobile_numbers_have_no_network() -> None:
    assert network_for(parse_international("+31101234567")) is None  # fixed line
    assert network_for(parse_international("+31661234567")) is None  # pager, no carrier data
    assert network_for(Number("+31612345678", "NL", "fixed_line")) is None


def test_ported_number_table_wins() -> None:
    number = parse_dutch_mobile("0612345678")  # KPN range
    assert network_for(number, {"+31612345678": "20404"}) == "20404"
    assert network_for(number, {"31612345678": "20416"}) == "20416"
    assert network_for(number, {"+31699999999": "20404"}) == "20408"
    assert network_for(number, {}) == "20408"
    unknown = parse_dutch_mobile("097012345678")
    assert network_for(unknown, {"+3197012345678": "20408"}) == "20408"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("+447400123456", "23420"),  # Three
        ("+447500123456", "23415"),  # Vodafone
        ("+447800123456", "23433"),  # Orange (EE)
        ("+4915112345678", "26201"),  # Telekom
        ("+4917212345678", "26202"),  # Vodafone
        ("+33612345678", "20810"),  # SFR
        ("+32475123456", "20601"),  # Proximus
    ],
)
def test_other_countries(raw: str, code: str) -> None:
    assert network_for(parse_international(raw)) == code


def test_every_dutch_carrier_prefix_maps_to_a_known_code_or_none() -> None:
    seen = set()
    for prefix in CARRIER_DATA:
        if not prefix.startswith("316"):
            continue
        nsn = prefix[2:].ljust(9, "1")
        number = parse_dutch_mobile("0" + nsn)
        code = network_for(number)
        if code is not None:
            assert code in NETWORK_NAMES
            seen.add(code)
    assert {"20402", "20404", "20406", "20407", "20408", "20409", "20412", "20416", "20417"} <= seen


def test_network_names() -> None:
    for code in (
        "20402",
        "20403",
        "20404",
        "20407",
        "20408",
        "20409",
        "20410",
        "20412",
        "20415",
        "20416",
        "20417",
        "20418",
        "20420",
        "20423",
        "20433",
        "20469",
    ):
        assert code in NETWORK_NAMES
    assert NETWORK_NAMES["20408"] == "KPN"
    assert "Vodafone" in NETWORK_NAMES["20404"]
    assert all(len(code) in (5, 6) and code.isdigit() for code in NETWORK_NAMES)
    assert network_name("99999") is None
