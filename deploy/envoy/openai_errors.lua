-- Turns gRPC errors of transcoded (REST) calls into OpenAI-shaped JSON responses.
--
-- Services put the OpenAI error body in the `x-error-json` trailing metadata and the
-- HTTP status in `x-http-status` (clawgate/common/errors.py). For REST callers this
-- filter, placed before the transcoder, sets the status and body from them and drops
-- gRPC internals. Native gRPC callers (request content-type application/grpc) pass
-- through untouched: rewriting their responses would break them.

local GRPC_HEADERS = {
  "x-error-json", "x-http-status", "grpc-status", "grpc-message",
  "grpc-status-details-bin", "grpc-accept-encoding", "grpc-encoding",
}

function envoy_on_request(handle)
  local ct = handle:headers():get("content-type") or ""
  if string.sub(ct, 1, 16) == "application/grpc" then
    handle:streamInfo():dynamicMetadata():set("clawgate", "native_grpc", true)
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
