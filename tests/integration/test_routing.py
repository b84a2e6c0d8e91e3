"""Route matching (every kind), first match wins, 404 JSON, direct responses,
cluster selection, weighted splits and load balancing."""

import time

import pytest

from harness import RawConn, assert_refusal, chunked, fetch, make_config


def dr(name, status=200):
    return {"status": status, "headers": {"content-type": "text/plain"}, "body": name}


def route(name, **match):
    return {"name": name, "match": match, "direct_response": dr(name)}


def routed(gatehouse, routes, **listener):
    return gatehouse(make_config(routes=routes, listener=listener or None))


def check(g, cases):
    """cases: (method, target, headers, expected route name or None for 404)."""
    failures = []
    with RawConn(g.port) as c:
        for method, target, headers, expected in cases:
            body = b"" if method in ("POST", "PUT") else None
            c.request(method, target, headers, body=body)
            r = c.read_response(method)
            if expected is None:
                if r.status != 404:
                    failures.append(f"{method} {target} {headers}: expected 404, got {r.status} {r.body!r}")
                else:
                    assert_refusal(r, 404, "not_found")
            elif r.status != 200 or r.body != expected.encode():
                failures.append(f"{method} {target} {headers}: expected route {expected!r}, got {r.status} {r.body!r}")
    assert not failures, "\n".join(failures)


def H(host):
    return [("Host", host)]


def test_host_exact(gatehouse):
    g = routed(gatehouse, [route("exact", host=["api.example.com"])])
    check(g, [
        ("GET", "/", H("api.example.com"), "exact"),
        ("GET", "/x", H("API.Example.COM"), "exact"),
        ("GET", "/", H("api.example.com:8080"), "exact"),
        ("GET", "/", H("other.example.com"), None),
        ("GET", "/", H("xapi.example.com"), None),
        ("GET", "/", H("api.example.com.evil"), None),
        ("GET", "/", H("sub.api.example.com"), None),
    ])


def test_host_trailing_dot_is_the_same_host(gatehouse):
    """A fully qualified name ("api.example.com.") is the same host: it must
    not slip past a host route (and whatever authn it carries) to a later
    catch-all route."""
    g = routed(gatehouse, [route("exact", host=["api.example.com"]),
                           route("wild", host=["*.example.org"]), route("other")])
    check(g, [
        ("GET", "/", H("api.example.com."), "exact"),
        ("GET", "/", H("API.example.com.:8080"), "exact"),
        ("GET", "/", H("a.example.org."), "wild"),
        ("GET", "/", H("api.example.com.."), "other"),
    ])


def test_host_wildcard(gatehouse):
    g = routed(gatehouse, [route("wild", host=["*.example.org"])])
    check(g, [
        ("GET", "/", H("a.example.org"), "wild"),
        ("GET", "/", H("A.EXAMPLE.ORG:443"), "wild"),
        ("GET", "/", H("www.example.org:8080"), "wild"),
        ("GET", "/", H("example.org"), None),
        ("GET", "/", H("evilexample.org"), None),
        ("GET", "/", H("a.example.org.evil"), None),
        ("GET", "/", H("a.example.com"), None),
    ])


def test_host_list_exact_and_wildcard(gatehouse):
    g = routed(gatehouse, [route("r1", host=["api.example.com", "*.example.org"]), route("other")])
    check(g, [
        ("GET", "/", H("api.example.com"), "r1"),
        ("GET", "/", H("x.example.org"), "r1"),
        ("GET", "/", H("example.com"), "other"),
    ])


def test_path_exact(gatehouse):
    g = routed(gatehouse, [route("exact", path={"exact": "/exact"})])
    check(g, [
        ("GET", "/exact", [], "exact"),
        ("GET", "/exact?x=1", [], "exact"),
        ("GET", "/exact/", [], None),
        ("GET", "/exactly", [], None),
        ("GET", "/Exact", [], None),
        ("GET", "/", [], None),
    ])


def test_path_prefix(gatehouse):
    g = routed(gatehouse, [route("prefix", path={"prefix": "/api"})])
    check(g, [
        ("GET", "/api", [], "prefix"),
        ("GET", "/api/v1/x", [], "prefix"),
        ("GET", "/api?x=1", [], "prefix"),
        ("GET", "/ap", [], None),
        ("GET", "/other/api", [], None),
        ("GET", "/API", [], None),
    ])


def test_path_regex(gatehouse):
    g = routed(gatehouse, [route("anchored", path={"regex": "^/v[0-9]+/"}),
                           route("tail", path={"regex": "[0-9]{3}$"})])
    check(g, [
        ("GET", "/v1/x", [], "anchored"),
        ("GET", "/v12/", [], "anchored"),
        ("GET", "/vx/", [], None),
        ("GET", "/a/v1/", [], None),
        ("GET", "/abc/123", [], "tail"),
        ("GET", "/abc/12", [], None),
        ("GET", "/abc/123?x=1", [], "tail"),
        ("GET", "/abc?x=123", [], None),
    ])


def test_methods(gatehouse):
    g = routed(gatehouse, [route("rw", methods=["GET", "POST"])])
    check(g, [
        ("GET", "/", [], "rw"),
        ("POST", "/", [], "rw"),
        ("PUT", "/", [], None),
        ("DELETE", "/", [], None),
    ])


@pytest.mark.parametrize("method", ["get", "delete", "Delete", "dELETE", "head", "pOsT", "m-search"])
def test_a_method_with_lower_case_letters_is_refused(gatehouse, method):
    """An upstream that reads "delete" as DELETE (Werkzeug, Django) and a
    route, policy or response framing that reads it as another method would
    disagree: refused before routing, as nginx and Envoy do."""
    g = routed(gatehouse, [route("guarded", methods=["DELETE"]), route("open")])
    r = fetch(g.port, method, "/")
    assert_refusal(r, 400, "bad_request")
    assert fetch(g.port, "DELETE", "/").body == b"guarded"
    assert fetch(g.port, "M-SEARCH", "/").body == b"open"


def test_headers_every_kind(gatehouse):
    g = routed(gatehouse, [
        route("exact", headers=[{"name": "x-env", "exact": "canary"}]),
        route("present", headers=[{"name": "x-debug", "present": True}]),
        route("regex", headers=[{"name": "x-ver", "regex": "^v2"}]),
        route("prefix", headers=[{"name": "x-p", "prefix": "ab"}]),
        route("absent", path={"prefix": "/absent"}, headers=[{"name": "x-no", "absent": True}]),
    ])
    check(g, [
        ("GET", "/", [("x-env", "canary")], "exact"),
        ("GET", "/", [("X-ENV", "canary")], "exact"),
        ("GET", "/", [("x-env", "Canary")], None),
        ("GET", "/", [("x-env", "canary-2")], None),
        ("GET", "/", [("x-debug", "1")], "present"),
        ("GET", "/", [("X-Debug", "")], "present"),
        ("GET", "/", [("x-ver", "v2.1")], "regex"),
        ("GET", "/", [("x-ver", "v1")], None),
        ("GET", "/", [("x-ver", "av2")], None),
        ("GET", "/", [("x-p", "abc")], "prefix"),
        ("GET", "/", [("x-p", "ab")], "prefix"),
        ("GET", "/", [("x-p", "xab")], None),
        ("GET", "/absent", [], "absent"),
        ("GET", "/absent", [("x-no", "1")], None),
        ("GET", "/absent", [("X-No", "")], None),
        ("GET", "/", [], None),
    ])


def test_headers_all_conditions_must_hold(gatehouse):
    g = routed(gatehouse, [route("both", headers=[{"name": "x-a", "exact": "1"}, {"name": "x-b", "present": True}])])
    check(g, [
        ("GET", "/", [("x-a", "1"), ("x-b", "z")], "both"),
        ("GET", "/", [("x-a", "1")], None),
        ("GET", "/", [("x-b", "z")], None),
        ("GET", "/", [("x-a", "2"), ("x-b", "z")], None),
    ])


def test_query(gatehouse):
    g = routed(gatehouse, [route("debug", query=[{"name": "debug", "exact": "1"}]),
                           route("q", query=[{"name": "q", "present": True}])])
    check(g, [
        ("GET", "/?debug=1", [], "debug"),
        ("GET", "/x?a=b&debug=1", [], "debug"),
        ("GET", "/?debug=1&q=x", [], "debug"),
        ("GET", "/?debug=2", [], None),
        ("GET", "/?debug=10", [], None),
        ("GET", "/?xdebug=1", [], None),
        ("GET", "/?q=abc", [], "q"),
        ("GET", "/x?a=1&q=", [], "q"),
        ("GET", "/?debug=2&q=1", [], "q"),
        ("GET", "/?qq=1", [], None),
        ("GET", "/", [], None),
    ])


def test_combined_match(gatehouse):
    g = routed(gatehouse, [route("all", host=["api.example.com"], path={"prefix": "/api"}, methods=["POST"],
                                 headers=[{"name": "x-env", "exact": "canary"}],
                                 query=[{"name": "debug", "exact": "1"}]), route("fallback")])
    good = [("Host", "api.example.com"), ("x-env", "canary")]
    check(g, [
        ("POST", "/api/x?debug=1", good, "all"),
        ("GET", "/api/x?debug=1", good, "fallback"),
        ("POST", "/other?debug=1", good, "fallback"),
        ("POST", "/api/x", good, "fallback"),
        ("POST", "/api/x?debug=1", [("Host", "api.example.com")], "fallback"),
        ("POST", "/api/x?debug=1", [("Host", "x.example.com"), ("x-env", "canary")], "fallback"),
    ])


def test_first_match_wins(gatehouse):
    g = routed(gatehouse, [route("first", path={"prefix": "/api"}), route("second", path={"prefix": "/api/v1"})])
    check(g, [("GET", "/api/v1/x", [], "first"), ("GET", "/api/x", [], "first")])


def test_first_match_wins_reversed(gatehouse):
    g = routed(gatehouse, [route("second", path={"prefix": "/api/v1"}), route("first", path={"prefix": "/api"})])
    check(g, [("GET", "/api/v1/x", [], "second"), ("GET", "/api/x", [], "first")])


def test_no_match_is_404_json_and_keeps_connection(gatehouse):
    g = routed(gatehouse, [route("only", path={"exact": "/only"})])
    with RawConn(g.port) as c:
        c.request("GET", "/nowhere")
        assert_refusal(c.read_response(), 404, "not_found")
        c.request("GET", "/only")
        r = c.read_response()
        assert r.status == 200 and r.body == b"only"


def test_direct_response(gatehouse):
    g = routed(gatehouse, [
        {"name": "health", "match": {"path": {"exact": "/health"}},
         "direct_response": {"status": 200, "headers": {"content-type": "text/plain"}, "body": "ok\n"}},
        {"name": "down", "match": {"path": {"exact": "/down"}},
         "direct_response": {"status": 503, "headers": {"content-type": "application/json", "x-foo": "bar",
                                                        "retry-after": "5"}, "body": '{"down": true}'}},
        {"name": "empty", "match": {"path": {"exact": "/empty"}}, "direct_response": {"status": 204}},
    ])
    with RawConn(g.port) as c:
        c.request("GET", "/health")
        r = c.read_response()
        assert r.status == 200 and r.body == b"ok\n" and r.header("content-type") == "text/plain", r
        assert r.header("content-length") == "3"
        c.request("GET", "/down")
        r = c.read_response()
        assert r.status == 503 and r.json() == {"down": True}, r
        assert r.header("x-foo") == "bar" and r.header("retry-after") == "5"
        c.request("GET", "/empty")
        r = c.read_response()
        assert r.status == 204 and r.body == b"" and not r.has("transfer-encoding"), r
        c.request("HEAD", "/health")
        r = c.read_response("HEAD")
        assert r.status == 200 and r.body == b"", r
        c.request("GET", "/health")
        assert c.read_response().body == b"ok\n"


def test_direct_response_with_request_body(gatehouse):
    """A direct response to a request with a body: gatehouse may discard the
    body and keep the connection, or answer with Connection: close and close;
    the body must never be taken for another request."""
    g = routed(gatehouse, [route("dr")])
    bodies = [
        ([], b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"),
        ([("Transfer-Encoding", "chunked")], chunked([b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n", b"y" * 5])),
    ]
    for headers, body in bodies:
        with RawConn(g.port) as c:
            c.request("POST", "/a", headers, body=body)
            r = c.read_response("POST")
            assert r.status == 200 and r.body == b"dr", r
            tokens = {t.strip().lower() for v in r.headers_all("connection") for t in v.split(",")}
            if "close" in tokens:
                assert c.is_closed(5), "Connection: close announced but the connection stayed open"
                continue
            c.request("GET", "/c")
            r = c.read_response()
            assert r.status == 200 and r.body == b"dr"
            assert c.is_closed(0.3) is False and not c.buf, "no extra response may follow"


def test_routes_pick_clusters(gatehouse, upstream):
    a, b = upstream(name="a"), upstream(name="b")
    cfg = make_config(routes=[
        {"name": "to-a", "match": {"path": {"prefix": "/a"}}, "to": "a"},
        {"name": "to-b", "match": {"path": {"prefix": "/b"}}, "to": "b"},
    ], clusters={"a": {"endpoints": [f"127.0.0.1:{a.port}"]}, "b": {"endpoints": [f"127.0.0.1:{b.port}"]}})
    g = gatehouse(cfg)
    for t in ("/a/1", "/b/1", "/a/2", "/b/2"):
        assert fetch(g.port, "GET", t).status == 200
    assert a.targets() == ["/a/1", "/a/2"]
    assert b.targets() == ["/b/1", "/b/2"]


def _run(g, n, target="/echo"):
    with RawConn(g.port) as c:
        for i in range(n):
            c.request("GET", f"{target}?i={i}")
            r = c.read_response()
            assert r.status == 200, r


def test_weighted_split(gatehouse, upstream):
    a, b = upstream(name="a"), upstream(name="b")
    cfg = make_config(routes=[{"name": "split", "match": {"path": {"prefix": "/"}},
                               "to": [{"cluster": "a", "weight": 90}, {"cluster": "b", "weight": 10}]}],
                      clusters={"a": {"endpoints": [f"127.0.0.1:{a.port}"]}, "b": {"endpoints": [f"127.0.0.1:{b.port}"]}})
    g = gatehouse(cfg)
    _run(g, 200)
    na, nb = len(a.complete_requests()), len(b.complete_requests())
    assert na + nb == 200
    assert nb > 0 and na > 0, (na, nb)
    assert na > 2 * nb, f"90/10 split gave {na}/{nb}"


def _lb(gatehouse, upstream, lb, weights=(1, 1), n=100):
    a, b = upstream(name="a"), upstream(name="b")
    eps = [{"address": f"127.0.0.1:{u.port}", "weight": w} if w != 1 else f"127.0.0.1:{u.port}"
           for u, w in zip((a, b), weights)]
    g = gatehouse(make_config(routes=[{"name": "all", "match": {"path": {"prefix": "/"}}, "to": "app"}],
                              clusters={"app": {"endpoints": eps, "lb": lb}}))
    _run(g, n)
    return len(a.complete_requests()), len(b.complete_requests())


def test_lb_round_robin_alternates(gatehouse, upstream):
    na, nb = _lb(gatehouse, upstream, "round_robin", n=20)
    assert (na, nb) == (10, 10)


def test_lb_round_robin_weighted(gatehouse, upstream):
    na, nb = _lb(gatehouse, upstream, "round_robin", weights=(1, 3), n=40)
    assert na + nb == 40 and na > 0
    assert 8 <= na <= 12, f"weights 1:3 gave {na}/{nb}"


def test_lb_least_request_spreads(gatehouse, upstream):
    na, nb = _lb(gatehouse, upstream, "least_request")
    assert na + nb == 100 and na > 0 and nb > 0, (na, nb)


def test_lb_least_request_sends_to_the_less_loaded_endpoint(gatehouse, upstream):
    """Requests held open on slow endpoints: each new request must go to
    the endpoint with fewer in flight, so the two never differ by more than
    one. (Sequential requests would prove nothing: both endpoints are idle
    whenever a request arrives.)"""
    a, b = upstream(name="a"), upstream(name="b")
    g = gatehouse(make_config(routes=[{"name": "all", "match": {"path": {"prefix": "/"}}, "to": "app"}],
                              clusters={"app": {"endpoints": [f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"],
                                                "lb": "least_request"}}))
    held = []
    history = []
    for i in range(40):
        c = RawConn(g.port, timeout=60)
        held.append(c)
        c.request("GET", f"/slow/60?i={i}")
        deadline = time.monotonic() + 10
        while len(a.complete_requests()) + len(b.complete_requests()) < i + 1:
            assert time.monotonic() < deadline, f"request {i} did not reach an upstream"
            time.sleep(0.01)
        na, nb = len(a.complete_requests()), len(b.complete_requests())
        history.append((na, nb))
        assert abs(na - nb) <= 1, f"request {i} went to the busier endpoint: in flight (a, b) = {history}"
    for c in held:
        c.close()


def test_lb_random_spreads(gatehouse, upstream):
    na, nb = _lb(gatehouse, upstream, "random")
    assert na + nb == 100 and na > 0 and nb > 0, (na, nb)


def test_lb_random_weighted(gatehouse, upstream):
    na, nb = _lb(gatehouse, upstream, "random", weights=(1, 9), n=200)
    assert na > 0 and nb > 2 * na, (na, nb)


def test_lb_default_is_round_robin(gatehouse, upstream):
    a, b = upstream(name="a"), upstream(name="b")
    g = gatehouse(make_config([a, b]))
    _run(g, 10)
    assert (len(a.complete_requests()), len(b.complete_requests())) == (5, 5)


def test_pipelined_mixed_direct_proxied_and_404(gatehouse, upstream):
    """Responses come back in request order even when a slow proxied request
    is followed by requests gatehouse answers itself."""
    up = upstream()
    cfg = make_config([up], routes=[
        route("direct", path={"exact": "/direct"}),
        {"name": "proxied", "match": {"path": {"regex": "^/(slow|echo)"}}, "to": "app"},
    ])
    g = gatehouse(cfg)
    with RawConn(g.port) as c:
        c.send(RawConn.build("GET", "/slow/0.5?n=1")
               + RawConn.build("GET", "/direct")
               + RawConn.build("GET", "/nowhere")
               + RawConn.build("HEAD", "/nowhere")
               + RawConn.build("GET", "/echo?n=2"))
        r = c.read_response()
        assert r.status == 200 and r.json()["target"] == "/slow/0.5?n=1", r
        r = c.read_response()
        assert r.status == 200 and r.body == b"direct", r
        assert_refusal(c.read_response(), 404, "not_found")
        r = c.read_response("HEAD")
        assert r.status == 404 and r.body == b"", r
        r = c.read_response()
        assert r.status == 200 and r.json()["target"] == "/echo?n=2", r
