"""Self-tests of the redis-server fixture (redis_util.py), so that a fleet
test failing elsewhere is gatehouse's, not the fixture's: start, commands,
kill, restart on the same port, pause and resume, a password."""

import socket

import pytest

from redis_util import RedisError, RedisServer


def test_start_and_commands(redis_server):
    assert redis_server.cmd("PING") == "PONG"
    assert redis_server.cmd("SET", "k", b"a\r\nb\x00") == "OK"
    assert redis_server.cmd("GET", "k") == b"a\r\nb\x00"
    assert redis_server.cmd("INCRBY", "n", 5) == 5
    assert redis_server.cmd("RPUSH", "l", "x", "y") == 2
    assert redis_server.cmd("LRANGE", "l", 0, -1) == [b"x", b"y"]
    assert redis_server.cmd("GET", "missing") is None
    with pytest.raises(RedisError, match="WRONGTYPE"):
        redis_server.cmd("GET", "l")
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    # Loopback only, no persistence.
    assert redis_server.cmd("CONFIG", "GET", "bind")[1] == b"127.0.0.1"
    assert redis_server.cmd("CONFIG", "GET", "save")[1] == b""
    assert redis_server.cmd("CONFIG", "GET", "appendonly")[1] == b"no"


def test_kill_and_restart_same_port(redis_server):
    port = redis_server.port
    redis_server.cmd("SET", "k", "v")
    redis_server.kill()
    assert not redis_server.alive()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    with pytest.raises(OSError):
        redis_server.cmd("PING")
    redis_server.restart()
    assert redis_server.port == port
    assert redis_server.cmd("GET", "k") is None  # nothing was saved


def test_pause_and_resume(redis_server):
    redis_server.pause()
    # The kernel accepts the connection; nobody answers.
    with socket.create_connection(("127.0.0.1", redis_server.port), timeout=2) as s:
        s.sendall(b"*1\r\n$4\r\nPING\r\n")
        s.settimeout(0.3)
        with pytest.raises(socket.timeout):
            s.recv(1)
    redis_server.resume()
    assert redis_server.cmd("PING") == "PONG"


def test_password(redis_servers):
    srv = redis_servers("--requirepass", "s3cret")
    assert srv.cmd("PING") == "PONG"  # cmd() authenticates
    other = RedisServer(port=srv.port)
    with pytest.raises(RedisError, match="NOAUTH"):
        other.cmd("GET", "k")
