-- Avatar server, lighttpd fast path (mod_magnet, magnet.attract-raw-url-to
-- in avatar-fastpath.conf). Decides, for each request, whether lighttpd may
-- answer it from the published tree DIR/.pub (written only by avatar.fcgi
-- after checking each file, docs/fastpath.md); if so it points uri.path at
-- the file under the internal prefix /.pub/, and mod_staticfile serves it
-- (ETag, Last-Modified, 304, HEAD, Range, the type from the extension).
-- Otherwise it changes nothing and the request goes to avatar.fcgi with
-- its original URL. It is the lighttpd twin of the maps and try_files of
-- conf/nginx/avatar-fastpath.conf: keep the two in step.
--
-- It runs on every request, so it stays cheap: no tables, no closures, no
-- loops over lists; only the strings a hit needs are made.

-- Change to the responder's --dir (keep the trailing slash).
local DIR = "/srv/avatars/"
local PUB = DIR .. ".pub/"

local r = lighty.r
local attr = r.req_attr

-- The internal prefix is for this script's rewrites only: a request that
-- names it itself (/.pub/..., also spelled /%2epub/... or /x/../.pub/...,
-- all of which lighttpd has decoded and normalised into uri.path by now)
-- gets the 404 that any other path of two segments gets.
if string.find(attr["uri.path"], "^/%.pub/") then return 404 end

local method = attr["request.method"]
if method ~= "GET" and method ~= "HEAD" then return 0 end

-- The request target as received (request.orig-uri; request.uri has
-- %31 already decoded to 1 by lighttpd's default url-normalize-unreserved):
-- /%31, /01, /+1 are no ids here, as on nginx's fast path.
local path, q = string.match(attr["request.orig-uri"], "^([^?]*)%??(.*)$")
local id, ext = string.match(path, "^/(%-?%d+)(.*)$")
if not id then
    id, ext = string.match(path, "^/avatar/(%-?%d+)(.*)$")
    if not id then return 0 end
end
-- Canonical ids only: 0, or no leading zero (nor -0) and at most 19 digits.
local d = string.byte(id) == 45 and 2 or 1
if string.byte(id, d) == 48 then
    if id ~= "0" then return 0 end
elseif #id - d >= 19 then
    return 0
end
local other = ext == ".webp" or ext == ".avif"
if not (other or ext == "" or ext == ".png" or ext == ".jpg" or ext == ".jpeg"
        or ext == ".gif") then
    return 0
end

-- The query: empty, or only v= and one s= or size=, in either order. Any
-- other (a repeated or unknown parameter, s=+5) is the responder's.
local v, s
if q ~= "" then
    local a, b = q, nil
    local amp = string.find(q, "&", 1, true)
    if amp then
        a, b = string.sub(q, 1, amp - 1), string.sub(q, amp + 1)
        if string.find(b, "&", 1, true) then return 0 end
    end
    for _ = 1, b and 2 or 1 do
        local k, val = string.match(a, "^(%a+)=(.*)$")
        if k == "v" and not v then
            v = val
        elseif (k == "s" or k == "size") and not s and not string.find(val, "%D") then
            s = val
        else
            return 0
        end
        a = b
    end
end

-- s= to the published size directory, for the default --sizes
-- 32,64,128,256,512 (change with them): the smallest size not below N, 512
-- up to 4096; the original (full) when absent, empty, 0, with a leading
-- zero, or above 4096.
local dir = "full"
if s and s ~= "" and #s <= 4 and string.byte(s) ~= 48 then
    local n = tonumber(s)
    if n <= 32 then dir = "32"
    elseif n <= 64 then dir = "64"
    elseif n <= 128 then dir = "128"
    elseif n <= 256 then dir = "256"
    elseif n <= 4096 then dir = "512"
    end
end

-- The names to try, in the nginx config's order. A size directory holds
-- the stored type only (publish.h), so /ID and /ID.png|jpg|jpeg|gif try
-- .jpg .png .gif .webp and answer as stored (a miss costs a stat: photos,
-- the commonest avatars, first); /ID.webp and /ID.avif try the
-- stored name first (the original may be a WebP), then x/. lighty.c.stat
-- is lighttpd's own stat (no cache here: server.stat-cache-engine is off).
local stat = lighty.c.stat
local name, cc = id, nil
local rel, t, st
while true do
    if other then
        rel, t = dir .. "/" .. name, ext
        st = stat(PUB .. rel .. t)
        if not (st and st.is_file) then
            rel = dir .. "/x/" .. name
            st = stat(PUB .. rel .. t)
        end
    else
        rel, t = dir .. "/" .. name, ".jpg"
        local stem = PUB .. rel
        st = stat(stem .. t)
        if not (st and st.is_file) then t = ".png"; st = stat(stem .. t) end
        if not (st and st.is_file) then t = ".gif"; st = stat(stem .. t) end
        if not (st and st.is_file) then t = ".webp"; st = stat(stem .. t) end
    end
    if st and st.is_file then break end
    if cc then return 0 end
    -- No published file. When the store has no original of the id either
    -- (the read path's names), it is a missing id: try once more for the
    -- default avatar that avatar.fcgi published as default.EXT (only with
    -- --missing default; it follows --default-id), sent with the
    -- default's short lifetime. Otherwise (an original not published yet
    -- or refused, a variant not made, no default names under
    -- --missing 404) the responder answers.
    local o = DIR .. id
    if stat(o .. ".png") or stat(o .. ".jpg") or stat(o .. ".jpeg") or stat(o .. ".gif")
        or stat(o .. ".webp") then
        return 0
    end
    name, cc = "default", "public, max-age=60"
end
-- The cache policy of docs/http.md: a non-empty v= names a version.
cc = cc or (v and v ~= "") and "public, max-age=31536000, immutable"
    or "public, max-age=300, stale-while-revalidate=86400"

-- Found: lighttpd re-evaluates $HTTP["url"] after this, so the /.pub/
-- block of avatar-fastpath.conf applies (no FastCGI, the store as document
-- root).
attr["uri.path"] = "/.pub/" .. rel .. t
r.resp_header["Cache-Control"] = cc
return 0
