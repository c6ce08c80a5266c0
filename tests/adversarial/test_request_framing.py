"""The matrix, request bodies: CL.TE, TE.CL and TE.TE smuggling, every
Content-Length and chunk-size variant of the literature (RFC 9112 6.1, 6.3,
7.1; RFC 9110 8.6), chunk extensions, trailers, bodies cut short.

Every request is followed by a pipelined `GET /second`: a refused request
must be answered once and the connection closed (so that /second, which a
desynchronised upstream would take for a new request, is never served), and
an accepted one must leave both hops in step, so /second is served as
itself."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from adv import Exp, Row, aborted, refused, run_rows, served  # noqa: E402

SECOND = b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
CHUNKED_HELLO = b"5\r\nhello\r\n0\r\n\r\n"


def post(fields, body=b"", version=b"HTTP/1.1"):
    return b"POST / " + version + b"\r\nHost: x\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n" + body


def body_is(want):
    def check(o):
        got = o.up_requests[0].body if o.up_requests else None
        assert got == want, "upstream got body %r, sent %r" % (got, want)
    return check


def fwd(want=b"hello", label="forwarded", check=None):
    """Forwarded (normalised where the row needs it) with <want> as the
    first request's body, /second after it; <check> adds a check."""
    def both(o):
        body_is(want)(o)
        if check:
            check(o)
    return served("/", "/second", label=label, check=both)


def processed_then_closed(label):
    """RFC 9112 6.1: a request with both CL and TE may be processed by TE
    alone, but the connection is closed after the response: what follows
    the chunked body is never read as a request."""
    return Exp(label, resp=[{200}], closed=True, up=1, up_targets=[b"/"])


# A proxy that decodes the chunks and sends them re-framed (as HAProxy
# does) never passes the bad line on: the invariants check that the upstream
# got strictly valid chunks, this that both requests arrived as sent.
REFRAMED = fwd(label="tolerated, re-framed (the invariants check the framing)")

ROWS = []


def row(name, send, expect, **kw):
    ROWS.append(Row(name, send, expect, **kw))


# ---- CL.TE and TE.CL: both framings in one request ----
te_body = b"0\r\n\r\n" + SMUGGLED
row("cl_te_smuggles_a_request_in_the_body",
    post([b"Content-Length: %d" % len(te_body), b"Transfer-Encoding: chunked"], te_body) + SECOND,
    [refused(400), processed_then_closed("processed as chunked, then closed")],
    why="CL.TE: a CL-reading hop sends the whole body, a TE-reading one sees /smuggled")
row("te_cl_smuggles_a_request_in_the_body",
    post([b"Transfer-Encoding: chunked", b"Content-Length: %d" % len(te_body)], te_body) + SECOND,
    [refused(400), processed_then_closed("processed as chunked, then closed")])
cl_body = b"%x\r\n" % len(SMUGGLED) + SMUGGLED + b"\r\n0\r\n\r\n"
row("te_cl_short_content_length",
    post([b"Transfer-Encoding: chunked", b"Content-Length: 4"], cl_body) + SECOND,
    [refused(400), processed_then_closed("processed as chunked, then closed")],
    why="TE.CL: a CL-reading hop stops after 4 bytes and reads the rest as a request")

# ---- TE.TE: Transfer-Encoding values, alone with a chunked body ----
# (value, rfc verdict): 'bad' must be refused (RFC 9112 6.3: chunked not
# last in a request: 400; an unknown coding: 501); 'ok' is valid and must
# be served; 'norm' is valid but only safe forwarded in a normal form
TE_VALUES = [
    ("xchunked", b"xchunked", "bad"),
    ("chunk", b"chunk", "bad"),
    ("chunked_identity", b"chunked, identity", "bad"),
    ("identity_chunked", b"identity, chunked", "norm"),
    ("unknown_then_chunked", b"foo, chunked", "norm"),
    ("quoted", b'"chunked"', "bad"),
    ("with_parameter", b"chunked;q=1", "bad"),
    ("chunked_twice_in_a_list", b"chunked, chunked", "bad"),
    ("vertical_tab_after", b"chunked\x0b", "bad"),
    ("form_feed_before", b"\x0cchunked", "bad"),
    ("nul_after", b"chunked\x00", "bad"),
    ("empty", b"", "bad"),
    ("upper_case", b"CHUNKED", "ok"),
    ("leading_spaces", b"   chunked", "ok"),
    ("leading_tab", b"\tchunked", "ok"),
    ("trailing_space", b"chunked  ", "ok"),
    ("empty_list_element", b", chunked", "ok"),
    ("gzip_then_chunked", b"gzip, chunked", "ok"),
]
for name, value, verdict in TE_VALUES:
    send = post([b"Transfer-Encoding: " + value], CHUNKED_HELLO) + SECOND
    if verdict == "bad":
        exp = [refused(400, 501)]
    elif verdict == "ok":
        # valid, but refusing an odd form is safe too (nginx 501s them)
        exp = [fwd(), refused(400, 501, label="odd form refused")]
    else:
        exp = [refused(400, 501), fwd(label="forwarded with the coding list normalised")]
    row("te_value_" + name, send, exp, why="Transfer-Encoding: %r" % value)

# ---- TE.TE: the field itself obfuscated ----
row("te_space_before_colon", post([b"Transfer-Encoding : chunked"], CHUNKED_HELLO) + SECOND,
    refused(400), why="RFC 9112 5.1: whitespace before the colon: MUST 400")
row("te_tab_before_colon", post([b"Transfer-Encoding\t: chunked"], CHUNKED_HELLO) + SECOND,
    refused(400))
row("te_name_with_a_space", post([b"Transfer Encoding: chunked"], CHUNKED_HELLO) + SECOND,
    refused(400))
row("te_name_with_underscore_is_another_field",
    post([b"Transfer_Encoding: chunked", b"Content-Length: 5"], b"hello") + SECOND,
    [fwd(), refused(400)],
    why="Transfer_Encoding is a different (valid) field name: CL frames the body")
row("te_obs_fold_value", post([b"Transfer-Encoding:", b" chunked"], CHUNKED_HELLO) + SECOND,
    [refused(400), fwd(label="unfolded and forwarded")],
    why="RFC 9112 5.2: obs-fold: reject, or replace with SP before interpreting")
row("te_hidden_in_a_fold_of_another_field",
    post([b"X-A: b", b" Transfer-Encoding: chunked"], CHUNKED_HELLO) + SECOND,
    [refused(400),
     Exp("unfolded into X-A; the chunked bytes then refused", resp=[{200}, {400}],
         closed=True, up=1, up_targets=[b"/"])])
row("te_first_line_starts_with_whitespace",
    b"POST / HTTP/1.1\r\n Transfer-Encoding: chunked\r\nHost: x\r\n\r\n" + CHUNKED_HELLO + SECOND,
    [refused(400),
     Exp("line consumed unprocessed; the chunked bytes then refused", resp=[{200}, {400}],
         closed=True, up=1, up_targets=[b"/"])],
    why="RFC 9112 2.2: whitespace-preceded first field line: reject or ignore the line")
row("te_two_lines_chunked_chunked",
    post([b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"], CHUNKED_HELLO) + SECOND,
    refused(400, 501))
row("te_two_lines_chunked_then_identity",
    post([b"Transfer-Encoding: chunked", b"Transfer-Encoding: identity"], CHUNKED_HELLO) + SECOND,
    refused(400, 501))
row("te_two_lines_identity_then_chunked",
    post([b"Transfer-Encoding: identity", b"Transfer-Encoding: chunked"], CHUNKED_HELLO) + SECOND,
    [refused(400, 501), fwd(label="forwarded with one Transfer-Encoding: chunked")])
row("te_in_http10_request",
    post([b"Transfer-Encoding: chunked"], CHUNKED_HELLO, b"HTTP/1.0") + SECOND,
    [refused(400), processed_then_closed("processed, then closed")],
    why="RFC 9112 6.1: TE in HTTP/1.0 is faulty framing, close after")
row("te_and_cl_in_http10_request",
    post([b"Transfer-Encoding: chunked", b"Content-Length: 5"], CHUNKED_HELLO, b"HTTP/1.0") + SECOND,
    [refused(400), processed_then_closed("processed, then closed")])

# ---- Content-Length values ----
CL_VALUES = [
    ("plus_sign", [b"Content-Length: +5"], "bad"),
    ("negative", [b"Content-Length: -5"], "bad"),
    ("hex", [b"Content-Length: 0x5"], "bad"),
    ("decimal_point", [b"Content-Length: 5.0"], "bad"),
    ("inner_space", [b"Content-Length: 5 5"], "bad"),
    ("empty", [b"Content-Length: "], "bad"),
    ("empty_then_valid", [b"Content-Length:", b"Content-Length: 5"], "bad"),
    ("list_differing", [b"Content-Length: 5, 6"], "bad"),
    ("lines_differing", [b"Content-Length: 5", b"Content-Length: 6"], "bad"),
    ("overflow", [b"Content-Length: 99999999999999999999999"], "bad"),
    ("nul", [b"Content-Length: 5\x00"], "bad"),
    ("vertical_tab", [b"Content-Length: 5\x0b"], "bad"),
    ("list_same_no_space", [b"Content-Length: 5,5"], "norm"),
    ("list_same", [b"Content-Length: 5, 5"], "norm"),
    ("lines_same", [b"Content-Length: 5", b"Content-Length: 5"], "norm"),
    ("leading_comma", [b"Content-Length: ,5"], "norm"),
    ("trailing_comma", [b"Content-Length: 5,"], "norm"),
    ("leading_zeros", [b"Content-Length: 0005"], "ok"),
    ("surrounding_blanks", [b"Content-Length: \t5 \t"], "ok"),
]
for name, fields, verdict in CL_VALUES:
    send = post(fields, b"hello") + SECOND
    if verdict == "bad":
        exp = [refused(400)]
    elif verdict == "ok":
        exp = [fwd(), refused(400, label="odd form refused")]
    else:
        exp = [refused(400), fwd(label="forwarded with one Content-Length: 5")]
    row("cl_" + name, send, exp,
        why="RFC 9110 8.6: Content-Length = 1*DIGIT; a proxy may not forward another form")
row("cl_fits_64_bits_body_never_comes",
    [post([b"Content-Length: 18446744073709551615"], b"hello"), ("sleep", 0.3), ("shut",)],
    aborted(400, 413),
    why="a body that cannot arrive: refused, or forwarded and the upstream closed with the client")
row("cl_body_cut_short_by_client",
    [post([b"Content-Length: 10"], b"hel"), ("sleep", 0.3), ("shut",)],
    aborted(400))
row("cl_on_get_is_a_body",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" + SECOND, fwd())
row("cl_zero_post", post([b"Content-Length: 0"]) + SECOND, fwd(b""))
row("cl_connection_names_content_length",
    post([b"Connection: Content-Length", b"Content-Length: 5"], b"hello") + SECOND,
    [fwd(), refused(400)],
    why="Connection may not strip a framing field: the body would become a request")
row("te_connection_names_transfer_encoding",
    post([b"Connection: Transfer-Encoding", b"Transfer-Encoding: chunked"], CHUNKED_HELLO) + SECOND,
    [fwd(), refused(400)])

# ---- chunk-size lines ----
CHUNK_LINES = [
    ("two_numbers", b"5 6"),
    ("hex_prefix", b"0x5"),
    ("negative", b"-5"),
    ("plus_sign", b"+5"),
    ("leading_space", b" 5"),
    ("leading_tab", b"\t5"),
    ("underscore", b"0_5"),
    ("overflow_17_digits", b"10000000000000005"),
    ("nul_after", b"5\x00"),
    ("bare_cr_in_extension", b"5;a\rb"),
    ("bare_lf_in_extension", b"5;a\nb"),
    ("extension_unterminated_quote", b'5;a="b'),
    ("extension_control_char", b"5;a\x01"),
    ("extension_space_in_value", b"5;a=b c"),
    ("extension_empty_name", b"5;=b"),
    ("extension_no_semicolon", b"5 x"),
]
for name, line in CHUNK_LINES:
    row("chunk_size_" + name,
        post([b"Transfer-Encoding: chunked"], line + b"\r\nhello\r\n0\r\n\r\n") + SECOND,
        aborted(400) + [REFRAMED],
        why="chunk line %r: RFC 9112 7.1 chunk-size = 1*HEXDIG [chunk-ext]" % line)
row("chunk_size_extension_valid",
    post([b"Transfer-Encoding: chunked"], b'5 ; a=b ;c="d;\\"e"\r\nhello\r\n0;z\r\n\r\n') + SECOND,
    fwd(), why="BWS, token and quoted-string extensions are valid and must pass")
row("chunk_size_trailing_whitespace",
    post([b"Transfer-Encoding: chunked"], b"5 \r\nhello\r\n0\r\n\r\n") + SECOND,
    aborted(400) + [fwd(label="tolerated and forwarded")], allow_up=("invalid chunk-size line",),
    why="not in the grammar, widely tolerated; harmless either way")
row("chunk_size_upper_case_and_leading_zeros",
    post([b"Transfer-Encoding: chunked"], b"0000A\r\nhellohello\r\n000\r\n\r\n") + SECOND,
    fwd(b"hellohello"))
row("chunk_extension_long",
    post([b"Transfer-Encoding: chunked"], b"5;a=" + b"b" * 5000 + b"\r\nhello\r\n0\r\n\r\n") + SECOND,
    aborted(400, 413) + [fwd(label="forwarded")],
    why="valid but long: a bound is allowed, a desync is not")
row("chunk_size_line_bare_lf",
    post([b"Transfer-Encoding: chunked"], b"5\nhello\r\n0\r\n\r\n") + SECOND, aborted(400) + [REFRAMED])
row("chunk_data_bare_lf_after",
    post([b"Transfer-Encoding: chunked"], b"5\r\nhello\n0\r\n\r\n") + SECOND, aborted(400) + [REFRAMED])
row("chunk_data_longer_than_size",
    post([b"Transfer-Encoding: chunked"], b"5\r\nhelloXX\r\n0\r\n\r\n") + SECOND, aborted(400))
row("chunk_data_shorter_than_size",
    post([b"Transfer-Encoding: chunked"], b"7\r\nhello\r\n0\r\n\r\n") + SECOND + SECOND,
    aborted(400))
row("last_chunk_bare_lf", post([b"Transfer-Encoding: chunked"], b"5\r\nhello\r\n0\n\n") + SECOND,
    aborted(400) + [REFRAMED])
row("chunked_in_fragments",
    [post([b"Transfer-Encoding: chunked"]), b"5\r", ("sleep", 0.1), b"\nhel", ("sleep", 0.1),
     b"lo\r\n0\r", ("sleep", 0.1), b"\n\r\n" + SECOND],
    fwd(), why="the scanner keeps its state across reads")
row("chunked_cut_short_by_client",
    [post([b"Transfer-Encoding: chunked"], b"5\r\nhello\r\n"), ("sleep", 0.3), ("shut",)],
    aborted(400))
row("chunk_huge_never_sent",
    [post([b"Transfer-Encoding: chunked"], b"ffffffffffffffff\r\nhello"), ("sleep", 0.3), ("shut",)],
    aborted(400, 413))

# ---- trailers ----
def no_bad_trailer(o):
    for r in o.up_requests:
        for n, v in r.trailers:
            assert n.lower() not in (b"content-length", b"transfer-encoding", b"host"), \
                "trailer %r forwarded" % n


TRAILERS = [
    ("without_colon", b"bad trailer"),
    ("space_before_colon", b"X-T : v"),
    ("obs_fold", b"X-T: a\r\n b"),
    ("nul_in_value", b"X-T: a\x00b"),
    ("bare_cr_in_value", b"X-T: a\rb"),
    ("empty_name", b": v"),
    ("content_length", b"Content-Length: 50"),
    ("transfer_encoding", b"Transfer-Encoding: chunked"),
    ("host", b"Host: evil"),
]
for name, line in TRAILERS:
    row("trailer_" + name,
        post([b"Transfer-Encoding: chunked"], b"5\r\nhello\r\n0\r\n" + line + b"\r\n\r\n") + SECOND,
        aborted(400) + [fwd(label="forwarded with the trailer dropped", check=no_bad_trailer)],
        why="RFC 9110 6.5: trailers are fields (validate or drop); framing fields never")
row("trailer_valid_passes",
    post([b"Transfer-Encoding: chunked"], b"5\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n") + SECOND,
    fwd())
row("trailer_section_too_large",
    post([b"Transfer-Encoding: chunked"],
         b"5\r\nhello\r\n0\r\n" + b"".join(b"X-T%d: %s\r\n" % (i, b"a" * 1000) for i in range(40))
         + b"\r\n") + SECOND,
    aborted(400, 413, 431) + [fwd(label="forwarded whole")])


if __name__ == "__main__":
    sys.exit(run_rows(ROWS))
