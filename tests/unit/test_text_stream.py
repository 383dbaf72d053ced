"""Incremental detokenization and stop strings, without a model."""

from llamaserve.engine.text_stream import TextStream, find_stop, partial_stop_len


def feed(stream, pieces):
    out = [stream.push(p) for p in pieces]
    return out, stream.finish()


def test_plain_text_passes_through():
    out, tail = feed(TextStream(), [b"Hel", b"lo", b" world"])
    assert out == ["Hel", "lo", " world"] and tail == ""


def test_split_utf8_is_held_until_complete():
    data = "🦙é".encode()
    out, tail = feed(TextStream(), [data[:1], data[1:3], data[3:5], data[5:]])
    assert out == ["", "", "🦙", "é"] and tail == ""


def test_mid_character_tells_a_cut_utf8_sequence():
    s = TextStream()
    data = "🦙".encode()
    s.push(b"a")
    assert not s.mid_character
    s.push(data[:2])
    assert s.mid_character
    s.push(data[2:])
    assert not s.mid_character


def test_invalid_utf8_becomes_replacement_at_end():
    out, tail = feed(TextStream(), [b"ok", b"\xe2\x82"])
    assert out == ["ok", ""] and tail == "\ufffd"


def test_stop_string_across_pieces_is_never_emitted():
    s = TextStream(["STOP"])
    out = [s.push(p) for p in [b"abc S", b"TO", b"P tail"]]
    assert "".join(out) == "abc " and s.stopped and s.stopping_word == "STOP"
    assert s.finish() == ""


def test_partial_stop_prefix_is_released_when_it_does_not_complete():
    s = TextStream(["STOP"])
    assert s.push(b"abc ST") == "abc "
    assert s.push(b"AR") == "STAR"
    assert s.finish() == ""


def test_partial_prefix_flushed_at_end():
    s = TextStream(["STOP"])
    assert s.push(b"x ST") == "x "
    assert s.finish() == "ST"


def test_earliest_of_several_stops_wins():
    s = TextStream(["world", "lo w"])
    assert s.push(b"hello world") == "hel" and s.stopping_word == "lo w"


def test_helpers():
    assert partial_stop_len("abcST", ["STOP"]) == 2
    assert partial_stop_len("abc", ["STOP"]) == 0
    assert find_stop("xxSTOPyy", ["STOP"], 4) == (2, "STOP")
    assert find_stop("xxSTOPyy", ["STOP"], 7) is None
