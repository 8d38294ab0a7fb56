-- POST /echo with a 1 KiB JSON document: the FastAPI JSON echo scenario
local items = {}
for i = 1, 16 do
  items[#items + 1] = string.format('{"id": %d, "name": "item number %04d", "ok": true}', i, i)
end
local body = '{"items": [' .. table.concat(items, ", ") .. '], "pad": "'
body = body .. string.rep("x", 1024 - #body - 2) .. '"}'
local request_bytes

function init(args)
  request_bytes = wrk.format("POST", "/echo", {["Content-Type"] = "application/json"}, body)
end

function request()
  return request_bytes
end
