-- bench/fresh.lua: wrk script for bench/run's fresh-token rows.
--   wrk -t1 ... -s bench/fresh.lua URL -- TOKENFILE [START]
-- Each request carries `Authorization: Bearer T` with the next token of
-- TOKENFILE (one a line), starting after line START (0-based, taken modulo
-- the line count) and wrapping around at the end.

local tokens, n, i = {}, 0, 0

function init(args)
    for line in io.lines(args[1]) do
        if #line > 0 then
            n = n + 1
            tokens[n] = "Bearer " .. line
        end
    end
    if n == 0 then
        error("no tokens in " .. tostring(args[1]))
    end
    i = (tonumber(args[2] or "0") or 0) % n
end

function request()
    i = i + 1
    if i > n then
        i = 1
    end
    return wrk.format("GET", "/", { ["Authorization"] = tokens[i] })
end
