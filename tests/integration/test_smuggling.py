"""Request smuggling and malformed input: each case must get the one status
docs/http.md gives it (400, or 501 for an unknown coding) with a JSON body, the connection must be closed, and the
upstream must never receive a request from the bad input (nor the request
smuggled inside it). A sentinel request afterwards proves that whatever
gatehouse forwarded has reached the upstream before we look."""

import pytest

from harness import RawConn, assert_refusal, fetch

SMUG = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
CODES = {400: "bad_request", 501: "not_implemented"}


def req(head_lines, body=b"", method="POST", target="/echo", version="HTTP/1.1", host=True):
    head = f"{method} {target} {version}\r\n".encode()
    if host:
        head += b"Host: a\r\n"
    head += b"".join(line + b"\r\n" for line in head_lines) + b"\r\n"
    return head + body


CHUNKED_BODY = b"5\r\nhello\r\n0\r\n\r\n"

# id -> (raw request, the one documented status (docs/http.md), error is in the
# body (head may be forwarded))
CASES = {
    # Content-Length and Transfer-Encoding together
    "cl_and_te": (req([b"Content-Length: 6", b"Transfer-Encoding: chunked"], b"0\r\n\r\n" + SMUG), 400, False),
    "te_and_cl": (req([b"Transfer-Encoding: chunked", b"Content-Length: 40"], b"0\r\n\r\n" + SMUG), 400, False),
    "te_and_cl_zero": (req([b"Content-Length: 0", b"Transfer-Encoding: chunked"], CHUNKED_BODY + SMUG), 400, False),
    # Transfer-Encoding other than exactly chunked
    "te_gzip_chunked": (req([b"Transfer-Encoding: gzip, chunked"], CHUNKED_BODY + SMUG), 400, False),
    "te_chunked_chunked": (req([b"Transfer-Encoding: chunked, chunked"], CHUNKED_BODY + SMUG), 400, False),
    "te_chunked_identity": (req([b"Transfer-Encoding: chunked, identity"], CHUNKED_BODY + SMUG), 400, False),
    "te_two_headers": (req([b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"], CHUNKED_BODY + SMUG), 400, False),
    "te_two_headers_gzip": (req([b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked"], CHUNKED_BODY + SMUG), 400, False),
    "te_xchunked": (req([b"Transfer-Encoding: xchunked"], CHUNKED_BODY + SMUG), 501, False),
    "te_chunkedx": (req([b"Transfer-Encoding: chunkedx"], CHUNKED_BODY + SMUG), 501, False),
    "te_quoted": (req([b'Transfer-Encoding: "chunked"'], CHUNKED_BODY + SMUG), 400, False),
    "te_vtab": (req([b"Transfer-Encoding: \x0bchunked"], CHUNKED_BODY + SMUG), 400, False),
    "te_formfeed": (req([b"Transfer-Encoding: \x0cchunked"], CHUNKED_BODY + SMUG), 400, False),
    "te_trailing_vtab": (req([b"Transfer-Encoding: chunked\x0b"], CHUNKED_BODY + SMUG), 400, False),
    "te_empty": (req([b"Transfer-Encoding: "], CHUNKED_BODY + SMUG), 400, False),
    "te_gzip_only": (req([b"Transfer-Encoding: gzip"], b"hello" + SMUG), 501, False),
    "te_http10": (req([b"Transfer-Encoding: chunked"], CHUNKED_BODY + SMUG, version="HTTP/1.0"), 400, False),
    "te_space_before_colon": (req([b"Transfer-Encoding : chunked"], CHUNKED_BODY + SMUG), 400, False),
    "te_tab_before_colon": (req([b"Transfer-Encoding\t: chunked"], CHUNKED_BODY + SMUG), 400, False),
    "te_obs_fold": (req([b"Transfer-Encoding:", b" chunked"], CHUNKED_BODY + SMUG), 400, False),
    # Content-Length malformed or differing
    "cl_differing": (req([b"Content-Length: 5", b"Content-Length: 6"], b"hello!" + SMUG), 400, False),
    "cl_list_equal": (req([b"Content-Length: 5, 5"], b"hello" + SMUG), 400, False),
    "cl_list_differing": (req([b"Content-Length: 5, 40"], b"hello" + SMUG), 400, False),
    "cl_plus": (req([b"Content-Length: +5"], b"hello" + SMUG), 400, False),
    "cl_minus": (req([b"Content-Length: -1"], b"hello" + SMUG), 400, False),
    "cl_huge": (req([b"Content-Length: " + b"9" * 30], b"hello" + SMUG), 400, False),
    "cl_2_pow_64": (req([b"Content-Length: 18446744073709551621"], b"hello" + SMUG), 400, False),
    "cl_hex": (req([b"Content-Length: 0x5"], b"hello" + SMUG), 400, False),
    "cl_trailing_junk": (req([b"Content-Length: 5abc"], b"hello" + SMUG), 400, False),
    "cl_inner_space": (req([b"Content-Length: 5 5"], b"hello" + SMUG), 400, False),
    "cl_empty": (req([b"Content-Length: "], b"hello" + SMUG), 400, False),
    "cl_space_before_colon": (req([b"Content-Length : 5"], b"hello" + SMUG), 400, False),
    # chunked body errors (the head may already be on its way upstream)
    "chunk_size_overflow": (req([b"Transfer-Encoding: chunked"], b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n" + SMUG), 400, True),
    "chunk_size_2_pow_64": (req([b"Transfer-Encoding: chunked"], b"10000000000000005\r\nhello\r\n0\r\n\r\n" + SMUG), 400, True),
    "chunk_size_bad_hex": (req([b"Transfer-Encoding: chunked"], b"zz\r\nhello\r\n0\r\n\r\n" + SMUG), 400, True),
    "chunk_size_negative": (req([b"Transfer-Encoding: chunked"], b"-5\r\nhello\r\n0\r\n\r\n" + SMUG), 400, True),
    "chunk_size_0x": (req([b"Transfer-Encoding: chunked"], b"0x5\r\nhello\r\n0\r\n\r\n" + SMUG), 400, True),
    "chunk_data_too_long": (req([b"Transfer-Encoding: chunked"], b"5\r\nhelloXX\r\n0\r\n\r\n" + SMUG), 400, True),
    "chunk_bare_lf": (req([b"Transfer-Encoding: chunked"], b"5\nhello\n0\n\n" + SMUG), 400, True),
    "chunk_ext_bare_lf": (req([b"Transfer-Encoding: chunked"], b"5;a\nb\r\nhello\r\n0\r\n\r\n" + SMUG), 400, True),
    "chunk_trailer_obs_fold": (req([b"Transfer-Encoding: chunked"], b"5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n" + SMUG), 400, True),
    # header syntax
    "obs_fold": (req([b"X-Foo: a", b" b"], method="GET"), 400, False),
    "obs_fold_tab": (req([b"X-Foo: a", b"\tb"], method="GET"), 400, False),
    "fold_after_request_line": (b"GET /echo HTTP/1.1\r\n Host: a\r\n\r\n", 400, False),
    "bare_cr_in_value": (req([b"X-Foo: a\rb"], method="GET"), 400, False),
    "bare_cr_before_crlf": (req([b"X-Foo: a\r"], method="GET"), 400, False),
    "bare_cr_request_line": (b"GET /echo\r HTTP/1.1\r\nHost: a\r\n\r\n", 400, False),
    "bare_lf_everywhere": (b"GET /echo HTTP/1.1\nHost: a\n\n", 400, False),
    "bare_lf_one_line": (b"GET /echo HTTP/1.1\r\nHost: a\nX-Foo: b\r\n\r\n", 400, False),
    "bare_lf_final": (b"GET /echo HTTP/1.1\r\nHost: a\r\n\n", 400, False),
    "bare_lf_smuggles_te": (b"POST /echo HTTP/1.1\r\nHost: a\r\nX-Foo: b\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello", 400, False),
    "nul_in_value": (req([b"X-Foo: a\x00b"], method="GET"), 400, False),
    "soh_in_value": (req([b"X-Foo: a\x01b"], method="GET"), 400, False),
    "esc_in_value": (req([b"X-Foo: a\x1bb"], method="GET"), 400, False),
    "del_in_value": (req([b"X-Foo: a\x7fb"], method="GET"), 400, False),
    "nul_in_target": (b"GET /ec\x00ho HTTP/1.1\r\nHost: a\r\n\r\n", 400, False),
    "space_before_colon": (req([b"X-Foo : a"], method="GET"), 400, False),
    "tab_before_colon": (req([b"X-Foo\t: a"], method="GET"), 400, False),
    "name_paren": (req([b"X(Foo): a"], method="GET"), 400, False),
    "name_space": (req([b"X Foo: a"], method="GET"), 400, False),
    "name_at": (req([b"X@Foo: a"], method="GET"), 400, False),
    "name_quote": (req([b'X"Foo: a'], method="GET"), 400, False),
    "name_slash": (req([b"X/Foo: a"], method="GET"), 400, False),
    "name_empty": (req([b": a"], method="GET"), 400, False),
    "name_non_ascii": (req([b"X-F\xe9: a"], method="GET"), 400, False),
    "no_colon": (req([b"X-Foo a"], method="GET"), 400, False),
    # request line and Host
    "missing_host_11": (b"GET /echo HTTP/1.1\r\nX-Foo: a\r\n\r\n", 400, False),
    "two_hosts": (req([b"Host: b"], method="GET"), 400, False),
    "two_hosts_same": (req([b"Host: a"], method="GET"), 400, False),
    "two_hosts_http10": (req([b"Host: b"], method="GET", version="HTTP/1.0"), 400, False),
    "method_bad_token": (b"G(ET /echo HTTP/1.1\r\nHost: a\r\n\r\n", 400, False),
    "request_line_double_space": (b"GET  /echo HTTP/1.1\r\nHost: a\r\n\r\n", 400, False),
    "request_line_space_in_target": (b"GET /e cho HTTP/1.1\r\nHost: a\r\n\r\n", 400, False),
    "version_garbage": (b"GET /echo HTTX/1.1\r\nHost: a\r\n\r\n", 400, False),
    "version_lowercase": (b"GET /echo http/1.1\r\nHost: a\r\n\r\n", 400, False),
    "version_2": (b"GET /echo HTTP/2.0\r\nHost: a\r\n\r\n", 400, False),
}


def check_refused(c, status):
    r = c.read_response()
    assert_refusal(r, status, CODES[status])
    assert c.is_closed(5), "the connection must be closed after a protocol-level refusal"
    return r


def run_case(g, up, raw, status, body_error, first=None):
    with RawConn(g.port) as c:
        if first is not None:
            c.send(first + raw)
            r1 = c.read_response()
            assert r1.status == 200 and r1.json()["target"] == "/echo?first=1", r1
        else:
            c.send(raw)
        check_refused(c, status)
    r = fetch(g.port, "GET", "/echo?sentinel=1")
    assert r.status == 200, r
    expected = (["/echo?first=1"] if first is not None else []) + ["/echo?sentinel=1"]
    complete = up.targets()
    assert complete == expected, f"upstream saw complete requests {complete}, expected {expected}: {up.requests}"
    everything = up.requests
    assert not any(x.target and "smuggled" in x.target for x in everything), everything
    if not body_error:
        partial = [x for x in everything if not x.complete]
        assert not partial, f"a request head from bad input reached the upstream: {partial}"


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_refused(proxy, case):
    raw, status, body_error = CASES[case]
    g, up = proxy()
    run_case(g, up, raw, status, body_error)


PIPELINED = ["cl_and_te", "te_gzip_chunked", "te_two_headers", "cl_differing", "chunk_size_overflow",
             "obs_fold", "bare_lf_one_line", "two_hosts", "nul_in_value", "space_before_colon"]


@pytest.mark.parametrize("case", PIPELINED, ids=PIPELINED)
def test_refused_after_a_good_pipelined_request(proxy, case):
    raw, status, body_error = CASES[case]
    g, up = proxy()
    run_case(g, up, raw, status, body_error, first=RawConn.build("GET", "/echo?first=1", host="a"))


# Inputs that look odd but are valid: they must be accepted, arrive upstream
# as exactly one request with the right body, and keep the connection usable.
VALID = {
    "te_uppercase": (req([b"Transfer-Encoding: Chunked"], CHUNKED_BODY), b"hello"),
    "te_extra_spaces": (req([b"Transfer-Encoding:   chunked  "], CHUNKED_BODY), b"hello"),
    "te_ows_tabs": (req([b"Transfer-Encoding: \t chunked \t"], CHUNKED_BODY), b"hello"),
    "te_no_space": (req([b"Transfer-Encoding:chunked"], CHUNKED_BODY), b"hello"),
    "cl_ows": (req([b"Content-Length:  5 \t"], b"hello"), b"hello"),
    "cl_no_space": (req([b"Content-Length:5"], b"hello"), b"hello"),
    "chunk_ext": (req([b"Transfer-Encoding: chunked"], b"5;name=value;x=\"q\"\r\nhello\r\n0\r\n\r\n"), b"hello"),
    "chunk_upper_hex_leading_zeros": (req([b"Transfer-Encoding: chunked"], b"000A\r\n0123456789\r\n0\r\n\r\n"), b"0123456789"),
    "header_value_with_tab": (req([b"X-Foo: a\tb", b"Content-Length: 5"], b"hello"), b"hello"),
    "cl_leading_zeros": (req([b"Content-Length: 005"], b"hello"), b"hello"),
}


@pytest.mark.parametrize("case", list(VALID), ids=list(VALID))
def test_valid_edge_cases_accepted(proxy, case):
    raw, body = VALID[case]
    g, up = proxy()
    with RawConn(g.port) as c:
        c.send(raw)
        r = c.read_response()
        assert r.status == 200, r
        assert r.json()["body"].encode("latin-1") == body
        c.send(RawConn.build("GET", "/echo?next=1", host="a"))
        assert c.read_response().json()["target"] == "/echo?next=1"
    reqs = up.complete_requests()
    assert [x.target for x in reqs] == ["/echo", "/echo?next=1"], reqs


def test_duplicate_equal_content_length(proxy):
    """RFC 9110 8.6 allows refusing or accepting equal repeated
    Content-Length; docs/http.md says gatehouse accepts the same spelling
    (and refuses a different one, case cl_differing). The upstream sees one
    request with one Content-Length, then the second request as a request
    of its own."""
    g, up = proxy()
    with RawConn(g.port) as c:
        c.send(req([b"Content-Length: 5", b"Content-Length: 5"], b"hello" + SMUG))
        r = c.read_response()
        assert r.status == 200, r
        e = r.json()
        assert e["body"] == "hello"
        assert [v for k, v in e["headers"] if k.lower() == "content-length"] == ["5"]
        r2 = c.read_response()
        assert r2.status == 200 and r2.json()["target"] == "/smuggled"
    reqs = up.complete_requests()
    assert [(x.target, x.framing, x.body) for x in reqs] == [("/echo", "length", b"hello"),
                                                            ("/smuggled", "none", b"")], reqs


def test_chunked_body_with_embedded_request_text_is_just_data(proxy):
    """A request inside chunk data is body, never a second request."""
    g, up = proxy()
    data = b"0\r\n\r\n" + SMUG
    body = f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n\r\n"
    e = fetch(g.port, "POST", "/echo", [("Transfer-Encoding", "chunked")], body=body).json()
    assert e["body"].encode() == data
    assert fetch(g.port, "GET", "/echo?sentinel=1").status == 200
    assert up.targets() == ["/echo", "/echo?sentinel=1"]
