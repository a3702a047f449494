"""The runner's Data-Juicer-style ops on small hand-made tables, and their registry."""

from __future__ import annotations

import hashlib
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from dj_observe.runner.ops import (
    OP_REGISTRY,
    Filter,
    Mapper,
    Op,
    OpConfigError,
    TextLengthFilter,
    build_op,
    register,
)


def run(name: str, texts: list[str | None], **args: object) -> list[str | None]:
    """The text column after op ``name`` on a one-column table of ``texts``."""
    table = pa.table({"text": pa.array(texts, pa.string())})
    return build_op(name, dict(args)).process(table).column("text").to_pylist()


# clean_links_mapper


def test_clean_links_removes_http_https_ftp_and_www_links() -> None:
    text = "a http://a.com/x, b https://b.org/p?q=1&r=2 c ftp://f.example.net/f.txt d www.ex.com e"
    assert run("clean_links_mapper", [text]) == ["a , b  c  d  e"]


def test_clean_links_removes_host_path_links_and_keeps_trailing_punctuation() -> None:
    text = "see example.com/page. Or (http://en.wikipedia.org/wiki/Foo_(bar))!"
    assert run("clean_links_mapper", [text]) == ["see . Or ()!"]


def test_clean_links_keeps_a_bare_domain_and_a_time() -> None:
    assert run("clean_links_mapper", ["visit example.com at 10:30am"]) == [
        "visit example.com at 10:30am"
    ]


def test_clean_links_treats_any_word_colon_letter_as_a_link_like_data_juicer() -> None:
    assert run("clean_links_mapper", ["Note:see mailto:bob@x.com here"]) == ["  here"]


def test_clean_links_replaces_with_repl() -> None:
    assert run("clean_links_mapper", ["go https://x.io/a now"], repl="<URL>") == ["go <URL> now"]


def test_clean_links_is_case_insensitive() -> None:
    assert run("clean_links_mapper", ["HTTPS://X.IO/A and WWW2.EXAMPLE.ORG/q!"]) == [" and !"]


# clean_email_mapper


def test_clean_email_removes_addresses() -> None:
    text = "mail john.doe+tag@mail.example.com or a_b@x.io, thanks"
    assert run("clean_email_mapper", [text]) == ["mail  or , thanks"]


def test_clean_email_replaces_with_repl() -> None:
    assert run("clean_email_mapper", ["to bob@x.org"], repl="[email]") == ["to [email]"]


def test_clean_email_leaves_uppercase_domains_like_data_juicer() -> None:
    assert run("clean_email_mapper", ["Bob@Example.COM"]) == ["Bob@Example.COM"]


# whitespace_normalization_mapper


def test_whitespace_variants_become_plain_spaces() -> None:
    text = "a\u00a0b\u2003c\u3000d\te\u200bf\u202fg"
    assert run("whitespace_normalization_mapper", [text]) == ["a b c d e f g"]


def test_whitespace_strips_the_whole_text_not_each_line() -> None:
    text = "\n\u3000  first line  \n  second\t\r\n"
    assert run("whitespace_normalization_mapper", [text]) == ["first line  \n  second"]


def test_whitespace_zero_width_space_at_the_edge_becomes_a_space() -> None:
    # Data-Juicer strips before replacing, and a zero-width space is not whitespace to strip().
    assert run("whitespace_normalization_mapper", ["\u200bword "]) == [" word"]


# punctuation_normalization_mapper


def test_punctuation_maps_unicode_punctuation_to_ascii() -> None:
    text = (
        "\u4f60\u597d\uff0c\u4e16\u754c\u3002\u201cHi\u201d \u2018it\u2019s\u2019"
        " \u2013 \u2014 \u2026\uff08x\uff09\uff05"
    )
    expected = "\u4f60\u597d,\u4e16\u754c.\"Hi\" \u2018it's' -  -  ...(x)%"
    assert run("punctuation_normalization_mapper", [text]) == [expected]


def test_punctuation_maps_fullwidth_one_to_a_quote_like_data_juicer() -> None:
    assert run("punctuation_normalization_mapper", ["\uff11\u300atitle\u300b"]) == ['""title"']


def test_punctuation_leaves_ascii_text_unchanged() -> None:
    assert run("punctuation_normalization_mapper", ["plain, ASCII text."]) == ["plain, ASCII text."]


# text_length_filter


def test_text_length_keeps_the_boundaries_and_drops_outside() -> None:
    texts = ["ab", "abc", "abcde", "abcdef"]
    assert run("text_length_filter", texts, min_len=3, max_len=5) == ["abc", "abcde"]


def test_text_length_counts_characters_not_bytes() -> None:
    assert run(
        "text_length_filter",
        ["\u00e9\u00e9\u00e9", "\u00e9\u00e9\u00e9\u00e9"],
        max_len=3,
        min_len=3,
    ) == ["\u00e9\u00e9\u00e9"]


def test_text_length_defaults_drop_texts_shorter_than_ten() -> None:
    assert run("text_length_filter", ["123456789", "1234567890"]) == ["1234567890"]


# words_num_filter


def test_words_num_keeps_the_boundaries_and_drops_outside() -> None:
    texts = ["one two", "one two three", "a b c d", "a b c d e"]
    assert run("words_num_filter", texts, min_num=3, max_num=4) == ["one two three", "a b c d"]


def test_words_num_splits_on_space_newline_and_tab() -> None:
    assert run("words_num_filter", ["one\ttwo\nthree", "one two"], min_num=3) == ["one\ttwo\nthree"]


def test_words_num_does_not_count_tokens_of_only_special_characters() -> None:
    # "--", "2024" and "!!" are not words; "(hello)" and "world," are.
    assert run("words_num_filter", ["(hello) -- 2024 world, !!"], min_num=2, max_num=2) == [
        "(hello) -- 2024 world, !!"
    ]


def test_words_num_default_minimum_is_ten() -> None:
    nine, ten = " ".join(["w"] * 9), " ".join(["w"] * 10)
    assert run("words_num_filter", [nine, ten]) == [ten]


# special_characters_filter


def test_special_characters_ratio_at_the_maximum_is_kept() -> None:
    # 1 special character in 4 -> 0.25; 2 in 4 -> 0.5.
    assert run("special_characters_filter", ["abc!", "ab!!"]) == ["abc!"]


def test_special_characters_minimum_drops_plain_text() -> None:
    texts = ["abcd", "ab12", "a\u2026\u00a9\U0001f600"]
    assert run("special_characters_filter", texts, min_ratio=0.5, max_ratio=1.0) == texts[1:]


@pytest.mark.parametrize(("max_ratio", "kept"), [(0.625, 1), (0.62, 0)])
def test_special_characters_count_digits_spaces_symbols_and_emoji(
    max_ratio: float, kept: int
) -> None:
    # 5 of 8 are special: "1", " ", degree sign, black star, grinning face.
    text = "ab1 c\u00b0\u2605\U0001f600"
    assert len(run("special_characters_filter", [text], max_ratio=max_ratio)) == kept


def test_special_characters_empty_text_has_ratio_zero() -> None:
    assert run("special_characters_filter", [""]) == [""]


# document_deduplicator


def test_dedup_keeps_the_first_occurrence_within_a_table() -> None:
    table = pa.table({"id": [1, 2, 3, 4, 5], "text": ["a", "b", "a", "c", "b"]})
    result = build_op("document_deduplicator", {}).process(table)
    assert result.column("id").to_pylist() == [1, 2, 4]


def test_dedup_ignores_leading_and_trailing_whitespace() -> None:
    assert run("document_deduplicator", ["same text", "  same text\n", "other"]) == [
        "same text",
        "other",
    ]


def test_dedup_is_case_sensitive_by_default_and_lowercase_merges_cases() -> None:
    texts = ["Hello World", "hello world"]
    assert run("document_deduplicator", texts) == texts
    assert run("document_deduplicator", texts, lowercase=True) == ["Hello World"]


def test_dedup_ignore_non_character_drops_spaces_digits_and_punctuation() -> None:
    texts = ["Hello, world 1!", "Helloworld", "hello world"]
    assert run("document_deduplicator", texts, ignore_non_character=True) == [
        "Hello, world 1!",
        "hello world",
    ]


def test_dedup_fingerprint_is_the_md5_hex_of_the_stripped_text() -> None:
    op = build_op("document_deduplicator", {})
    prints = op.fingerprints(pa.table({"text": [" Hello\n", None]}))
    assert prints.to_pylist() == [hashlib.md5(b"Hello").hexdigest(), None]


def test_dedup_fingerprints_and_keep_remove_a_duplicate_across_two_tables() -> None:
    op = build_op("document_deduplicator", {})
    first = pa.table({"text": ["alpha", "beta", "alpha"]})
    second = pa.table({"text": ["gamma", "beta", "delta"]})
    seen: set[str | None] = set()
    masks = []
    for table in (first, second):
        mask = []
        for fingerprint in op.fingerprints(table).to_pylist():
            mask.append(fingerprint not in seen)
            seen.add(fingerprint)
        masks.append(pa.array(mask))
    kept = [op.keep(table, mask) for table, mask in zip((first, second), masks, strict=True)]
    assert [t.column("text").to_pylist() for t in kept] == [["alpha", "beta"], ["gamma", "delta"]]


def test_dedup_keep_rejects_a_mask_of_the_wrong_length() -> None:
    op = build_op("document_deduplicator", {})
    with pytest.raises(ValueError, match="2 values for 3 rows"):
        op.keep(pa.table({"text": ["a", "b", "c"]}), pa.array([True, False]))


def test_dedup_is_a_global_deduplicator() -> None:
    op = build_op("document_deduplicator", {})
    assert (op.kind, op.is_global) == ("deduplicator", True)


# nulls and empty tables


@pytest.mark.parametrize("name", [n for n, c in OP_REGISTRY.items() if issubclass(c, Mapper)])
def test_mappers_leave_null_and_empty_texts(name: str) -> None:
    assert run(name, [None, ""]) == [None, ""]


@pytest.mark.parametrize("name", [n for n, c in OP_REGISTRY.items() if issubclass(c, Filter)])
def test_filters_drop_rows_with_a_null_text(name: str) -> None:
    args = {"text_length_filter": {"min_len": 0}, "words_num_filter": {"min_num": 0}}
    table = pa.table({"text": pa.array([None, "kept"], pa.string())})
    result = build_op(name, args.get(name, {})).process(table)
    assert result.column("text").to_pylist() == ["kept"]


def test_dedup_keeps_one_null_text() -> None:
    assert run("document_deduplicator", [None, "a", None]) == [None, "a"]


@pytest.mark.parametrize("name", sorted(OP_REGISTRY))
def test_every_op_accepts_an_untyped_all_null_column(name: str) -> None:
    kept = {"mapper": 2, "filter": 0, "deduplicator": 1}[OP_REGISTRY[name].kind]
    assert build_op(name, {}).process(pa.table({"text": [None, None]})).num_rows == kept


@pytest.mark.parametrize("name", sorted(OP_REGISTRY))
def test_every_op_accepts_an_empty_table(name: str) -> None:
    empty = pa.table({"text": pa.array([], pa.string())})
    assert build_op(name, {}).process(empty).num_rows == 0


def test_ops_use_the_text_key_column_and_keep_the_others() -> None:
    table = pa.table({"id": [1, 2], "body": ["see http://x.io/a", "plain"]})
    result = build_op("clean_links_mapper", {"text_key": "body"}).process(table)
    assert result.to_pydict() == {"id": [1, 2], "body": ["see ", "plain"]}


def test_a_missing_text_column_is_a_config_error_naming_it() -> None:
    with pytest.raises(OpConfigError, match=r"text_length_filter: .* 'content'"):
        build_op("text_length_filter", {"text_key": "content"}).process(pa.table({"text": ["x"]}))


# registry


def test_registry_holds_the_data_juicer_ops_with_their_kinds() -> None:
    kinds = {name: cls.kind for name, cls in OP_REGISTRY.items()}
    assert kinds == {
        "clean_links_mapper": "mapper",
        "clean_email_mapper": "mapper",
        "whitespace_normalization_mapper": "mapper",
        "punctuation_normalization_mapper": "mapper",
        "text_length_filter": "filter",
        "words_num_filter": "filter",
        "special_characters_filter": "filter",
        "document_deduplicator": "deduplicator",
    }


def test_build_op_by_name_with_args() -> None:
    op = build_op("text_length_filter", {"min_len": 5, "text_key": "body"})
    assert isinstance(op, TextLengthFilter)
    assert (op.min_len, op.max_len, op.text_key) == (5, sys.maxsize, "body")


def test_build_op_with_no_args_uses_data_juicer_defaults() -> None:
    op = build_op("special_characters_filter", None)
    assert (op.min_ratio, op.max_ratio, op.text_key) == (0.0, 0.25, "text")


def test_build_op_accepts_an_int_for_a_float_argument() -> None:
    assert build_op("special_characters_filter", {"max_ratio": 1}).max_ratio == 1


def test_unknown_op_lists_the_known_ones() -> None:
    with pytest.raises(OpConfigError, match=r"unknown op 'no_such_mapper'; known ops: .*clean_"):
        build_op("no_such_mapper", {})


def test_unknown_argument_names_the_op_and_the_argument() -> None:
    with pytest.raises(OpConfigError, match=r"words_num_filter: unknown argument 'min_words'"):
        build_op("words_num_filter", {"min_words": 3})


def test_wrong_type_names_the_expected_type() -> None:
    with pytest.raises(OpConfigError, match=r"text_length_filter: argument 'min_len' must be int"):
        build_op("text_length_filter", {"min_len": "10"})


def test_a_bool_is_not_an_int() -> None:
    with pytest.raises(OpConfigError, match=r"'max_num' must be int, got bool"):
        build_op("words_num_filter", {"max_num": True})


def test_a_non_bool_flag_is_rejected() -> None:
    with pytest.raises(OpConfigError, match=r"document_deduplicator: argument 'lowercase'"):
        build_op("document_deduplicator", {"lowercase": "yes"})


def test_arguments_must_be_a_mapping() -> None:
    with pytest.raises(OpConfigError, match=r"clean_email_mapper: arguments must be a mapping"):
        build_op("clean_email_mapper", ["repl"])  # type: ignore[arg-type]


def test_config_errors_are_value_errors_of_one_line() -> None:
    with pytest.raises(ValueError) as caught:
        build_op("nope", {})
    assert "\n" not in str(caught.value)


def test_a_new_op_is_one_small_registered_class() -> None:
    @register
    class UpperMapper(Mapper):
        name = "upper_mapper"
        suffix: str = ""

        def map_texts(self, texts: pa.ChunkedArray) -> pa.ChunkedArray:
            return pc.binary_join_element_wise(pc.utf8_upper(texts), self.suffix, "")

    try:
        op: Op = build_op("upper_mapper", {"suffix": "!"})
        assert op.process(pa.table({"text": ["hi"]})).column("text").to_pylist() == ["HI!"]
        with pytest.raises(OpConfigError, match="upper_mapper: unknown argument 'prefix'"):
            build_op("upper_mapper", {"prefix": "x"})
    finally:
        del OP_REGISTRY["upper_mapper"]


def test_registering_a_name_twice_is_refused() -> None:
    class Again(TextLengthFilter):
        name = "text_length_filter"

    with pytest.raises(ValueError, match="already registered"):
        register(Again)


# scale


def test_every_op_processes_100k_rows() -> None:
    pattern = [
        "Visit https://example.com/page or mail info@example.org \u2014 thanks\u3002",
        "short",
        "  Plain\u00a0text with enough words to pass the words filter easily here  ",
        "!!! $$$ ### %%% 123 456 789",
        None,
    ]
    table = pa.table({"text": pa.array(pattern * 20_000, pa.string())})
    expected = {
        "clean_links_mapper": 100_000,
        "clean_email_mapper": 100_000,
        "whitespace_normalization_mapper": 100_000,
        "punctuation_normalization_mapper": 100_000,
        "text_length_filter": 60_000,
        "words_num_filter": 20_000,
        "special_characters_filter": 60_000,
        "document_deduplicator": 5,
    }
    rows = {name: build_op(name, {}).process(table).num_rows for name in OP_REGISTRY}
    assert rows == expected
