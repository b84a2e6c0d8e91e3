-- bench/token.lua: wrk script for bench/issuer's token endpoint rows.
--   wrk ... -s bench/token.lua URL -- BASIC
-- Every request is `POST /oauth2/token` with the client credentials grant,
-- authenticated by `Authorization: Basic BASIC`.

local req

function init(args)
    req = wrk.format("POST", "/oauth2/token", {
        ["Content-Type"] = "application/x-www-form-urlencoded",
        ["Authorization"] = "Basic " .. args[1],
    }, "grant_type=client_credentials")
end

function request()
    return req
end
