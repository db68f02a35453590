"""The one Markdown escaper (cloudorch/markdown.py): no value can break a table row or become markup."""

from __future__ import annotations

from cloudorch import markdown as md


def test_text_escapes_markup_and_flattens_control_characters() -> None:
    assert md.text("a|b") == "a\\|b"
    assert md.text("<script>") == "&lt;script&gt;"
    assert md.text("`x`") == "\\`x\\`"
    assert md.text("one\ntwo\r\tthree\x00") == "one two  three "
    assert md.text("back\\slash") == "back\\\\slash"


def test_code_spans_stay_one_span_in_one_cell() -> None:
    assert md.code("a|b") == "`a\\|b`"
    assert md.code("say `hi`") == "`say 'hi'`"
    assert md.code("<b>") == "`<b>`"  # a code span never renders HTML
    assert md.code("x\ny") == "`x y`"
    assert md.code("abcdefghij", limit=8) == "`abcde...`"


def test_plan_drift_and_policy_markdown_use_it(fixture_plan: object) -> None:
    import inspect

    from cloudorch.cli import markdown, render
    from cloudorch.policy import formats

    for module in (markdown, render, formats):
        source = inspect.getsource(module)
        assert "md.text(" in source or "md.code(" in source, module.__name__
        assert 'replace("|"' not in source, module.__name__
