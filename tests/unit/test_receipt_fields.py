"""``receipts.parse_fields`` reads the usual Appendix B layout in one match; whatever it reads, the general parse
(any order, any spacing) must read the same from the same text, or receipts would change state with their layout."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from smsgate.connectors.smpp import receipts

value = st.text(st.characters(codec="latin-1"), max_size=12)
key_case = st.sampled_from([str.lower, str.upper, str.title])


@given(
    st.lists(value, min_size=7, max_size=7),
    st.one_of(st.none(), st.text(st.characters(codec="latin-1"), max_size=30)),
    key_case,
)
def test_the_layout_reads_as_the_general_parse_does(values: list[str], text: str | None, case: object) -> None:
    keys = ["id", "sub", "dlvrd", "submit date", "done date", "stat", "err"]
    change = case if callable(case) else str.lower
    raw = " ".join(f"{change(k)}:{v}" for k, v in zip(keys, values, strict=True))
    if text is not None:
        raw += f" {change('text')}:{text}"
    assert receipts.parse_fields(raw) == receipts._any_fields(raw)


def test_the_usual_receipt_takes_the_layout_and_an_unusual_one_the_general_parse() -> None:
    usual = "id:4f2a sub:001 dlvrd:001 submit date:2612031812 done date:2612031813 stat:DELIVRD err:000 text:hi"
    assert receipts._LAYOUT.fullmatch(usual) is not None
    assert receipts.parse_fields(usual) == {
        "id": "4f2a", "sub": "001", "dlvrd": "001", "submit_date": "2612031812", "done_date": "2612031813",
        "stat": "DELIVRD", "err": "000", "text": "hi",
    }  # fmt: skip
    unusual = "stat:UNDELIV id: 77 err:0b1"
    assert receipts._LAYOUT.fullmatch(unusual) is None
    assert receipts.parse_fields(unusual) == {"stat": "UNDELIV", "id": "77", "err": "0b1"}


def test_dates_are_read_once_and_refused_alike() -> None:
    assert receipts.parse_date("2612031812") is receipts.parse_date("2612031812")
    assert receipts.parse_date("2612031812") is not None
    for bad in (None, "", "26120318", "2613031812", "26120318１２"):
        assert receipts.parse_date(bad) is None
