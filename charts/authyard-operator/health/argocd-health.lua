-- Argo CD health check for authyard.dev AuthServer and OAuthClient (the same rules for both kinds).
-- Reads what the operator writes (kstatus-compliant): status.observedGeneration and the Ready,
-- Progressing and Degraded conditions. Decision table, first match wins:
--   1. no status yet                                        -> Progressing
--   2. status.observedGeneration < metadata.generation      -> Progressing (spec change not seen yet)
--   3. Degraded=True                                        -> Degraded
--   4. Ready=True                                           -> Healthy
--   5. Ready=False and Progressing=True                     -> Progressing (rolling out)
--   6. Ready=False with a waiting reason (see below)        -> Progressing (depends on something coming)
--   7. Ready=False                                          -> Degraded (the message says what to fix)
--   8. no Ready condition, or Ready=Unknown                 -> Progressing
local hs = {}
local waiting = {
  -- OAuthClient: its AuthServer, or (policy RequireExisting) its Secret, has not arrived yet.
  AuthServerNotFound = true, AuthServerNotReady = true, SecretNotFound = true,
  -- AuthServer: its Deployment is being created or rolled out.
  Creating = true, RollingOut = true,
}

local function find(conditions, kind)
  if conditions == nil then return nil end
  for _, c in ipairs(conditions) do
    if c.type == kind then return c end
  end
  return nil
end

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Authyard operator to report status"
  return hs
end

local generation = obj.metadata and obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the Authyard operator to observe generation " .. tostring(generation)
  return hs
end

local conditions = obj.status.conditions
local ready = find(conditions, "Ready")
local progressing = find(conditions, "Progressing")
local degraded = find(conditions, "Degraded")

if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = degraded.message or degraded.reason or "Degraded"
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "Ready"
  return hs
end

if ready ~= nil and ready.status == "False" then
  if progressing ~= nil and progressing.status == "True" then
    hs.status = "Progressing"
    hs.message = progressing.message or ready.message or "Progressing"
    return hs
  end
  if ready.reason ~= nil and waiting[ready.reason] then
    hs.status = "Progressing"
    hs.message = ready.message or ready.reason
    return hs
  end
  hs.status = "Degraded"
  hs.message = ready.message or ready.reason or "Not Ready"
  return hs
end

hs.status = "Progressing"
hs.message = (ready ~= nil and ready.message) or "Waiting for the Ready condition"
return hs
