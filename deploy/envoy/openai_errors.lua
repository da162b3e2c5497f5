-- Turns gRPC errors of transcoded (REST) calls into OpenAI-shaped JSON responses.
--
-- Services put the OpenAI error body in the `x-error-json` trailing metadata and the
-- HTTP status in `x-http-status` (clawgate/common/errors.py). For REST callers this
-- filter, placed before the transcoder, sets the status and body from them and drops
-- gRPC internals. Native gRPC callers (HTTP/2, content-type application/grpc) pass
-- through untouched: rewriting their responses would break them.

local GRPC_HEADERS = {
  "x-error-json", "x-http-status", "grpc-status", "grpc-message",
  "grpc-status-details-bin", "grpc-accept-encoding", "grpc-encoding",
}

-- gRPC status → (HTTP status, OpenAI type), for errors that carry no `x-error-json`
-- (raised by grpc itself rather than by a Clawgate handler).
local BY_GRPC = {
  ["1"] = {499, "api_error"}, ["2"] = {500, "api_error"},
  ["3"] = {400, "invalid_request_error"}, ["4"] = {504, "api_error"},
  ["5"] = {404, "not_found_error"}, ["6"] = {409, "conflict_error"},
  ["7"] = {403, "permission_error"}, ["8"] = {429, "rate_limit_error"},
  ["9"] = {412, "conflict_error"}, ["10"] = {409, "conflict_error"},
  ["11"] = {400, "invalid_request_error"}, ["12"] = {501, "api_error"},
  ["13"] = {500, "api_error"}, ["14"] = {503, "api_error"},
  ["15"] = {500, "api_error"}, ["16"] = {401, "authentication_error"},
}

local function json_string(text)
  -- Non-ASCII bytes become "?": the text may be cut mid-character or not be UTF-8.
  text = string.gsub(text, '[%c"\\\128-\255]', function(c)
    if string.byte(c) >= 128 then
      return "?"
    end
    return string.format("\\u%04x", string.byte(c))
  end)
  return '"' .. text .. '"'
end

local function percent_decoded(text)
  return (string.gsub(text or "", "%%(%x%x)", function(h)
    return string.char(tonumber(h, 16))
  end))
end

-- An OpenAI error body from a bare gRPC status.
local function grpc_error(code, message)
  local mapped = BY_GRPC[code] or {500, "api_error"}
  message = string.sub(message, 1, 300)
  if message == "" then
    message = "the service failed the request"
  end
  local body = '{"error":{"message":' .. json_string(message .. " (gRPC status " .. code .. ")")
    .. ',"type":"' .. mapped[2] .. '","param":null,"code":"grpc_status_' .. code .. '"}}'
  return tostring(mapped[1]), body
end

function envoy_on_request(handle)
  local headers = handle:headers()
  local ct = headers:get("content-type") or ""
  -- gRPC runs over HTTP/2 only: an HTTP/1 request claiming to be gRPC is a REST client.
  local h2 = string.sub(handle:streamInfo():protocol() or "", 1, 6) == "HTTP/2"
  if h2 and string.sub(ct, 1, 16) == "application/grpc" then
    handle:streamInfo():dynamicMetadata():set("clawgate", "native_grpc", true)
    return
  end
  -- gRPC's own headers from a REST client (e.g. a malformed `grpc-timeout`) would reach
  -- the service as gRPC protocol headers and fail the call; they mean nothing in REST.
  local drop = {}
  for name, _ in pairs(headers) do
    if string.sub(name, 1, 5) == "grpc-" then
      table.insert(drop, name)
    end
  end
  for _, name in ipairs(drop) do
    headers:remove(name)
  end
end

function envoy_on_response(handle)
  local meta = handle:streamInfo():dynamicMetadata():get("clawgate")
  if meta ~= nil and meta["native_grpc"] then
    return
  end
  local headers = handle:headers()
  local err = headers:get("x-error-json")
  local status = headers:get("x-http-status")
  local grpc_status = headers:get("grpc-status")
  if err == nil and grpc_status ~= nil and grpc_status ~= "0" then
    local message = percent_decoded(headers:get("grpc-message"))
    if status ~= nil and string.sub(message, 1, 9) == '{"error":' then
      -- Envoy's own reply in gRPC form (the request claimed to be gRPC), already shaped
      -- by local_reply_config, which also set x-http-status.
      err = message
    else
      status, err = grpc_error(grpc_status, message)
    end
  end
  if status ~= nil then
    headers:replace(":status", status)
  end
  for _, name in ipairs(GRPC_HEADERS) do
    headers:remove(name)
  end
  if err ~= nil then
    headers:replace("content-type", "application/json")
    headers:replace("content-length", tostring(#err))
    handle:body(true):setBytes(err)
  end
end
